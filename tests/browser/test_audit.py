"""Issue 10's audit test for a customer: what she does in the panel, an admin finds under her name."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from panel.accounts.choices import Role
from panel.accounts.models import ApiToken, User
from tests.browser.test_login import PASSWORD, log_in
from tests.browser.test_pages import new_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_finds_the_customers_actions_in_the_audit_log(page, browser, live_panel):
    User.objects.create_user("boss", password=PASSWORD, role=Role.ADMIN)
    acme = User.objects.create_user("acme", password=PASSWORD, role=Role.RESELLER)
    User.objects.create_user("carol", password=PASSWORD, role=Role.CUSTOMER, owner=acme)
    User.objects.create_user("frank", password=PASSWORD, role=Role.CUSTOMER, owner=acme)

    # Carol renames herself and makes an API token; Frank makes one too.
    log_in(page, live_panel, "carol")
    page.goto(f"{live_panel}/account/")
    page.get_by_label("First name").fill("Carol")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_role("status")).to_be_visible()
    page.goto(f"{live_panel}/account/tokens/")
    page.get_by_label("Name").fill("deploy-script")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#new-token")).to_be_visible()
    frank = new_page(browser)
    log_in(frank, live_panel, "frank")
    frank.goto(f"{live_panel}/account/tokens/")
    frank.get_by_label("Name").fill("franks-token")
    frank.get_by_role("button", name="Create token").click()
    expect(frank.locator("#new-token")).to_be_visible()
    frank.context.close()
    assert ApiToken.objects.filter(user__username="carol", name="deploy-script").exists()

    admin = new_page(browser)
    log_in(admin, live_panel, "boss")
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    search = admin.get_by_role("search")
    search.get_by_label("User", exact=True).select_option(label="carol")
    search.get_by_role("button", name="Filter").click()
    rows = admin.get_by_role("row")
    expect(rows.filter(has_text="deploy-script")).to_have_count(1)
    expect(rows.filter(has_text="Updated").filter(has_text="first_name")).to_have_count(1)  # her profile
    expect(rows).to_have_count(3)  # the header and her two changes, nobody else's
    expect(rows.filter(has_text="franks-token")).to_have_count(0)
    rows.filter(has_text="deploy-script").get_by_role("link").first.click()
    expect(admin.get_by_text("by carol · through web")).to_be_visible()
    admin.context.close()
