"""A person in Chromium, against the ASGI server and real workers."""

import re

import pytest
from playwright.sync_api import Page, expect

from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.nodes import services

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"


def log_in(page: Page, base: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_wrong_password_is_told_plainly(page, live_panel):
    User.objects.create_user("ada", password=PASSWORD, role=Role.CUSTOMER)
    log_in(page, live_panel, "ada", "not it")
    expect(page.get_by_role("alert")).to_contain_text("did not match")
    expect(page).to_have_url(re.compile(r"/login/$"))


def test_admin_logs_in_and_pings_the_node(page, live_panel, stack):
    User.objects.create_user("root-admin", password=PASSWORD, role=Role.ADMIN)
    services.register_node(stack.node_name)

    log_in(page, live_panel, "root-admin")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Welcome, root-admin")
    expect(page.get_by_text("signed in as administrator")).to_be_visible()

    page.get_by_role("link", name="Nodes").click()
    row = page.get_by_role("row", name=re.compile(stack.node_name))
    expect(row).to_contain_text("never")
    row.get_by_role("button", name="Ping").click()
    expect(page.get_by_role("status")).to_contain_text(f"Ping sent to {stack.node_name}")

    # No reload: the list refreshes itself until the report arrives.
    expect(row).to_contain_text("Succeeded", timeout=30000)
    # ...and so does the operation's own page
    page.get_by_role("link", name="Operations").click()
    page.get_by_role("row", name=re.compile("node.ping")).first.get_by_role("link").first.click()
    expect(page.locator("#operation-progress")).to_contain_text("Succeeded")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/"))


def test_customer_sees_no_admin_pages(page, live_panel):
    User.objects.create_user("cust", password=PASSWORD, role=Role.CUSTOMER)
    log_in(page, live_panel, "cust")
    expect(page.get_by_role("link", name="Nodes")).to_have_count(0)
    response = page.goto(f"{live_panel}/nodes/")
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
