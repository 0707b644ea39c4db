"""Resellers, admins and customers in Chromium against the ASGI server (and real workers for nodes)."""

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.nodes import services as nodes
from panel.nodes.choices import NodeState
from panel.nodes.models import Node
from panel.plans import budgets
from panel.plans.models import Plan
from tests.browser.test_login import PASSWORD, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GB = 10**9


def new_page(browser: Browser) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.set_default_timeout(15000)
    return page


def test_reseller_sells_within_its_budget_and_the_admin_sees_it_in_the_audit_log(page, browser, live_panel):
    admin = User.objects.create_user("boss", password=PASSWORD, role=Role.ADMIN)
    reseller = User.objects.create_user("acme", password=PASSWORD, role=Role.RESELLER)
    budgets.grant(admin, reseller, vps_count=5, ram=4 * GB, disk=100 * GB, cpus=8, ipv4=5, ipv6_prefixes=5,
                  traffic=None)

    log_in(page, live_panel, "acme")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Nodes")).to_have_count(0)

    # A plan of its own
    nav.get_by_role("link", name="Plans").click()
    page.get_by_role("link", name="Add").click()
    page.get_by_label("Name", exact=True).fill("acme-small")
    page.get_by_label("RAM", exact=True).fill("1 GiB")
    page.get_by_label("Disk space", exact=True).fill("20 GB")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Plan acme-small")
    expect(page.get_by_text("1.07 GB")).to_be_visible()
    plan = Plan.objects.get(name="acme-small")
    assert plan.owner == reseller and plan.ram == 2**30 and plan.diskspace == 20 * GB

    # A customer
    nav.get_by_role("link", name="Customers").click()
    page.get_by_role("link", name="Add").click()
    page.get_by_label("User name").fill("carol")
    page.get_by_label("E-mail").fill("carol@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("carol")
    carol = User.objects.get(username="carol")
    assert carol.owner == reseller and carol.role == Role.CUSTOMER

    # Her budget cannot exceed the reseller's: the error is on the page, nothing is saved
    page.get_by_role("link", name="Change budget").click()
    page.get_by_role("textbox", name="RAM").fill("8 GB")
    page.get_by_role("button", name="Save budget").click()
    expect(page.get_by_role("alert").filter(has_text="At most the reseller's own budget")).to_be_visible()
    assert not budgets.Budget.objects.filter(grantee=carol).exists()
    page.get_by_role("textbox", name="RAM").fill("2 GB")
    page.get_by_role("spinbutton", name="VPSs").fill("2")
    page.get_by_role("button", name="Save budget").click()
    expect(page.get_by_role("status")).to_contain_text("Budget of carol saved")
    assert budgets.Budget.objects.get(grantee=carol).ram == 2 * GB

    # Suspending her ends her sign-in
    page.get_by_role("link", name="Back to carol").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Suspend").click()
    expect(page.get_by_role("status")).to_contain_text("carol suspended")
    carol.refresh_from_db()
    assert not carol.is_active

    # The admin finds all of it under the reseller's name in the audit log
    admin_page = new_page(browser)
    log_in(admin_page, live_panel, "boss")
    admin_page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    search = admin_page.get_by_role("search")
    search.get_by_label("User", exact=True).select_option(label="acme")
    search.get_by_role("button", name="Filter").click()
    rows = admin_page.get_by_role("row")
    expect(rows.filter(has_text="acme-small")).to_have_count(1)
    expect(rows.filter(has_text="budget of carol").first).to_be_visible()
    carol_rows = rows.filter(has=admin_page.get_by_role("link", name="carol", exact=True))
    expect(carol_rows).to_have_count(2)  # created, then suspended
    expect(rows.filter(has_text="boss")).to_have_count(0)
    # every row is the reseller's, each through the web with a request id
    rows.filter(has_text="acme-small").get_by_role("link").first.click()
    expect(admin_page.get_by_role("heading", level=1)).to_contain_text("plan acme-small")
    expect(admin_page.get_by_text("by acme · through web")).to_be_visible()
    admin_page.context.close()


def test_customer_cannot_reach_reseller_or_admin_pages(page, live_panel):
    reseller = User.objects.create_user("resa", password=PASSWORD, role=Role.RESELLER)
    User.objects.create_user("cust", password=PASSWORD, role=Role.CUSTOMER, owner=reseller)
    log_in(page, live_panel, "cust")
    nav = page.get_by_role("navigation", name="Main")
    for link in ("Customers", "Users", "Nodes", "IP pools", "Audit log", "Budgets", "Webhooks"):
        expect(nav.get_by_role("link", name=link, exact=True)).to_have_count(0)
    for path in ("/users/", "/users/add/", f"/users/{reseller.pk}/", "/plans/add/", "/budgets/", "/audit/",
                 "/webhooks/", "/nodes/", "/ip-pools/"):
        response = page.goto(f"{live_panel}{path}")
        assert response.status in (403, 404), path
        expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Not allowed|Not found"))
    # what is theirs opens
    page.goto(f"{live_panel}/budget/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Budget")


def test_node_list_shows_a_node_going_up_after_a_heartbeat(page, live_panel, stack):
    User.objects.create_user("ops", password=PASSWORD, role=Role.ADMIN)
    node, _ = nodes.register_node(stack.node_name)
    # Disabled nodes ignore heartbeats: the page is surely loaded before the node can turn up.
    Node.objects.filter(pk=node.pk).update(state=NodeState.DISABLED)
    log_in(page, live_panel, "ops")
    page.get_by_role("link", name="Nodes").click()
    row = page.get_by_role("row", name=re.compile(stack.node_name))
    expect(row).to_contain_text("Disabled")
    Node.objects.filter(pk=node.pk).update(state=NodeState.NEW)
    # No reload: the table refreshes itself, and the node's next heartbeat turns it up.
    expect(row).to_contain_text("Up", timeout=45000)
    expect(row).to_contain_text(re.compile(r"\d+ s ago"))
