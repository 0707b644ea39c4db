"""Screenshots of the main pages into docs/screenshots/ (not collected by the suite: run it on purpose).

    ./ctl screenshots        # = ./ctl test tests/browser/screenshots.py -q

It runs the browser tier's fixtures — the ASGI server against a fresh test
database, real node and panel workers, the supervisor and the console relay
(the VPSs shown really run) — fills the panel with a small, believable
installation through its services and its pages, and saves one PNG per page
(laptop 1280x800, plus a few at phone size). The VPSs it made are destroyed
at the end, also when it fails.
"""

from __future__ import annotations

import datetime
import re
import time
from pathlib import Path

import pytest
from django.core.management.color import no_style
from django.db import connection
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.core.notify import services as notify
from panel.nodes import ippools
from panel.nodes import services as nodes
from panel.plans import budgets
from panel.plans import services as plans
from panel.plans.models import Plan
from panel.usage import rollups
from panel.usage.models import Rollup, Sample
from panel.vps import services as vps_services
from panel.vps.models import VPS
from tests.browser.test_login import PASSWORD, log_in
from tests.browser.test_vps_pages import node_ready, node_runtime

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OUT = Path(__file__).resolve().parent.parent.parent / "docs" / "screenshots"
GB = 10**9
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Work for a VPS to show in its graphs: bursts of shell arithmetic, a second's rest between them.
BUSY = "while :; do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1; done"


def shoot(page: Page, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)


def signed_in(browser: Browser, base: str, username: str, viewport: dict[str, int] = LAPTOP) -> Page:
    page = browser.new_context(viewport=viewport).new_page()
    page.set_default_timeout(20000)
    log_in(page, base, username)
    return page


def _sequences_past_seeded_rows() -> None:
    """Transactional tests may reset sequences while the migration's seeded plans still exist."""
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [Plan]):
            cursor.execute(sql)


def populate(node_name: str) -> dict[str, User]:
    _sequences_past_seeded_rows()
    admin = User.objects.create_user("admin", password=PASSWORD, role=Role.ADMIN, email="ops@example.com",
                                     first_name="Ada", last_name="Admin")
    acme = User.objects.create_user("acme", password=PASSWORD, role=Role.RESELLER, email="sales@acme.example.com")
    globex = User.objects.create_user("globex", password=PASSWORD, role=Role.RESELLER)
    for reseller, ram in ((acme, 64), (globex, 32)):
        budgets.grant(admin, reseller, vps_count=20, ram=ram * GB, disk=1000 * GB, cpus=32, ipv4=20,
                      ipv6_prefixes=20, traffic=None)
    customers = {}
    for name, reseller in (("carol", acme), ("dave", acme), ("erin", acme), ("frank", globex)):
        customers[name] = User.objects.create_user(name, password=PASSWORD, role=Role.CUSTOMER, owner=reseller,
                                                   email=f"{name}@example.com")
    User.objects.create_user("walk-in", password=PASSWORD, role=Role.CUSTOMER)
    customers["erin"].is_active = False
    customers["erin"].save()
    budgets.grant(acme, customers["carol"], vps_count=3, ram=8 * GB, disk=200 * GB, cpus=4, ipv4=3,
                  ipv6_prefixes=3, traffic=5000 * GB)
    plans.create_plan(acme, name="acme-start", description="Small web sites", ram=2**30, swap=2**29,
                      diskspace=20 * GB, cpus=1, traffic=1000 * GB, port_speed=10**8)
    plans.create_plan(acme, name="acme-pro", description="Shops and databases", ram=4 * 2**30, swap=2**30,
                      diskspace=80 * GB, cpus=2, traffic=3000 * GB, port_speed=10**9)
    node, _ = nodes.register_node(node_name, "Rack 1, first node")
    nodes.register_node("edge-2", "Rack 2 (not installed yet)")
    pool = ippools.create_pool(name="public-v4", family=4, network="198.51.100.0/24", gateway="198.51.100.1",
                               node=node)
    ippools.create_pool(name="public-v6", family=6, network="2001:db8:100::/48", unit_prefix=64, node=node)
    ippools.allocate(pool, owner=customers["frank"], assigned_to="")
    notify.notify(customers["carol"], "traffic.80_percent", "80 % of this month's traffic used on shop",
                  "800 GB of 1 TB. Over the quota the port is throttled to 1 Mbit/s.", level="warning", email=False)
    notify.notify(customers["carol"], "account.welcome", "Welcome to ctpanel", email=False)
    notify.create_webhook(acme, name="crm", url="https://crm.acme.example.com/hooks/ctpanel",
                          events=["vps.*", "traffic.*"])
    return {"admin": admin, "acme": acme, **customers}


def running_vpss(stack, users: dict[str, User]) -> dict[str, VPS]:
    """Carol's VPSs, really created on the test node (the shop running, the blog stopped)."""
    node_runtime(stack).templates.ensure_busybox()
    node = node_ready(stack.node_name)
    start, pro = Plan.objects.get(name="acme-start"), Plan.objects.get(name="acme-pro")
    carol, frank = users["carol"], users["frank"]
    made = {}
    for name, hostname, plan, on in (("shop", "shop.carol.example", pro, True),
                                     ("blog", "blog.carol.example", start, False)):
        made[name], op = vps_services.create_vps(carol, customer=carol, plan=plan, template="busybox",
                                                  hostname=hostname, start=on)
        operation_done(op, "succeeded")
    # A create that fails on the node: the page says why in plain words.
    made["broken"], op = vps_services.create_vps(users["admin"], customer=frank, node=node, template="centos-7",
                                                  hostname="legacy.frank.example", limits={"ram": 2**30})
    operation_done(op, "failed")
    return made


def usage_reported(vps: VPS, timeout: float = 150) -> None:
    """The node samples once a minute: wait for the first sample of `vps` so its usage shows."""
    deadline = time.monotonic() + timeout
    while not Sample.objects.filter(vps=vps).exists():
        assert time.monotonic() < deadline, f"no usage sample for VPS {vps.ctid} within {timeout:g} s"
        time.sleep(1)


def samples_since(vps: VPS, since, count: int, timeout: float = 420) -> None:
    """The node samples once a minute: wait for `count` samples of `vps` taken after `since`."""
    deadline = time.monotonic() + timeout
    while Sample.objects.filter(vps=vps, time__gt=since).count() < count:
        assert time.monotonic() < deadline, f"fewer than {count} usage samples of VPS {vps.ctid} in {timeout:g} s"
        time.sleep(2)


def operation_done(op, status: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not op.is_terminal and time.monotonic() < deadline:
        time.sleep(0.2)
        op.refresh_from_db()
    assert op.status == status, f"{op.action}: {op.status} {op.error_code} {op.error_message}"


@pytest.fixture
def leave_no_vps(console_node):
    """The VPSs made for the pictures are destroyed afterwards (one runs a CPU loop for its graphs), before the
    supervisor and the relay stop."""
    yield
    admin = User.objects.filter(role=Role.ADMIN).first()
    for vps in VPS.objects.exclude(state="destroyed"):
        operation_done(vps_services.destroy(admin, vps), "succeeded")


@pytest.mark.timeout(900)  # it waits for a few minutes of real usage samples for the graphs
@pytest.mark.usefixtures("leave_no_vps")
def test_screenshots(browser: Browser, live_panel: str, stack) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    users = populate(stack.node_name)
    base = live_panel

    anonymous = browser.new_context(viewport=LAPTOP).new_page()
    anonymous.goto(f"{base}/login/")
    shoot(anonymous, "login")

    # The reseller at work: a customer, a plan form, a budget refused.
    acme = signed_in(browser, base, "acme")
    acme.get_by_role("link", name="Customers").click()
    acme.get_by_role("link", name="Add").click()
    acme.get_by_label("User name").fill("grace")
    acme.get_by_label("E-mail").fill("grace@example.com")
    acme.get_by_role("button", name="Save").click()
    expect(acme.get_by_role("heading", level=1)).to_have_text("grace")
    acme.get_by_role("link", name="Change budget").click()
    acme.get_by_role("textbox", name="RAM").fill("100 GB")
    acme.get_by_role("button", name="Save budget").click()
    expect(acme.get_by_role("alert").first).to_be_visible()
    shoot(acme, "reseller-budget-refused")
    acme.goto(f"{base}/users/")
    shoot(acme, "reseller-customers")
    acme.goto(f"{base}/users/{users['carol'].pk}/")
    expect(acme.get_by_role("link", name="Change budget")).to_be_visible()
    shoot(acme, "reseller-customer")
    acme.goto(f"{base}/plans/add/")
    shoot(acme, "reseller-plan-form")
    acme.goto(f"{base}/webhooks/")
    shoot(acme, "reseller-webhooks")

    # The admin: nodes (one up by its heartbeat), a ping followed live, pools, audit log.
    admin = signed_in(browser, base, "admin")
    admin.get_by_role("link", name="Nodes").click()
    row = admin.get_by_role("row", name=re.compile(stack.node_name))
    expect(row).to_contain_text("Up", timeout=45000)
    row.get_by_role("button", name="Ping").click()
    expect(row).to_contain_text("Succeeded", timeout=30000)
    shoot(admin, "admin-nodes")
    admin.goto(f"{base}/operations/")
    shoot(admin, "admin-operations")
    admin.get_by_role("row", name=re.compile("node.ping")).first.get_by_role("link").first.click()
    expect(admin.locator("#operation-progress")).to_contain_text("Succeeded")
    shoot(admin, "admin-operation")
    for path, name in (("/ip-pools/", "admin-ip-pools"), ("/users/", "admin-users"),
                       ("/plans/", "admin-plans"), ("/budgets/", "admin-budgets"), ("/audit/", "admin-audit-log")):
        admin.goto(base + path)
        shoot(admin, name)
    admin.goto(f"{base}/ip-pools/")
    admin.get_by_role("link", name="public-v4").click()
    shoot(admin, "admin-ip-pool")
    admin.goto(f"{base}/audit/")
    admin.get_by_role("link", name="grace", exact=True).first.click()
    shoot(admin, "admin-audit-change")

    # VPSs: the customer's, the reseller's and the admin's views.
    vpss = running_vpss(stack, users)
    usage_reported(vpss["shop"])
    carol = signed_in(browser, base, "carol")
    shoot(carol, "customer-dashboard")
    carol.goto(f"{base}/vps/")
    shoot(carol, "customer-vpss")
    carol.goto(f"{base}/vps/{vpss['shop'].ctid}/")
    expect(carol.locator("#vps-state")).to_contain_text("Running")
    shoot(carol, "customer-vps")
    carol.locator("#vps-state").get_by_role("button", name="Restart").click()
    expect(carol.locator("#operation-progress")).to_contain_text("Succeeded", timeout=60000)
    expect(carol.locator("#vps-state")).to_contain_text("Running", timeout=60000)
    shoot(carol, "customer-vps-restarted")
    # Reinstall (filled in, not sent) and the snapshots and backups card after a backup.
    carol.goto(f"{base}/vps/{vpss['shop'].ctid}/reinstall/")
    carol.get_by_label("New root password").fill("a new root password")
    carol.get_by_label("The same password again").fill("a new root password")
    carol.get_by_label("Type the host name to confirm").fill(vpss["shop"].hostname)
    shoot(carol, "customer-vps-reinstall")
    carol.goto(f"{base}/vps/{vpss['shop'].ctid}/")
    carol.locator("#vps-data").get_by_role("button", name="Back up now").click()
    expect(carol.locator("#operation-progress")).to_contain_text("Succeeded", timeout=60000)
    expect(carol.locator("#vps-data").get_by_role("button", name=re.compile("Restore the backup"))).to_have_count(
        1, timeout=60000)
    carol.locator("#vps-data").screenshot(path=str(OUT / "customer-vps-data.png"))
    # Some work in the shop for its graphs (they are shot at the end, after a few samples).
    busy_since = timezone.now()
    node_runtime(stack).exec(vpss["shop"].ctid, ["sh", "-c", f"({BUSY}) >/dev/null 2>&1 </dev/null &"], timeout=10)
    carol.goto(f"{base}/vps/add/")
    carol.get_by_role("textbox", name="Host name").fill("mail.carol.example")
    shoot(carol, "customer-vps-create")
    acme.goto(f"{base}/vps/{vpss['blog'].ctid}/")
    acme.get_by_label("Reason shown to the customer").fill("Invoice 2026-11 is unpaid")
    acme.once("dialog", lambda dialog: dialog.accept())
    acme.get_by_role("button", name="Suspend").click()
    expect(acme.locator("#operation-progress")).to_contain_text("Succeeded", timeout=60000)
    acme.goto(f"{base}/vps/")
    shoot(acme, "reseller-vpss")
    acme.goto(f"{base}/")
    shoot(acme, "reseller-dashboard")
    carol.goto(f"{base}/vps/{vpss['blog'].ctid}/")
    shoot(carol, "customer-vps-suspended")
    admin.goto(f"{base}/vps/")
    shoot(admin, "admin-vpss")
    admin.goto(f"{base}/")
    shoot(admin, "admin-dashboard")
    admin.goto(f"{base}/vps/{vpss['broken'].ctid}/operations/")
    admin.get_by_role("row", name=re.compile("node.vps.start")).get_by_role("link").first.click()
    expect(admin.locator("#operation-progress")).to_contain_text("Failed")
    shoot(admin, "admin-vps-operation-failed")
    admin.goto(f"{base}/nodes/{stack.node_name}/")
    shoot(admin, "admin-node")
    admin.goto(f"{base}/templates/")
    expect(admin.get_by_role("cell", name="busybox", exact=True)).to_be_visible()
    shoot(admin, "admin-templates")
    # The console: a command and its output, the keyboard hint under the terminal.
    carol.goto(f"{base}/vps/{vpss['shop'].ctid}/console/")
    expect(carol.locator("#console-status")).to_have_text("Connected")
    carol.locator("#console").click()
    carol.keyboard.type("uname -sr; df -h / | tail -n 1")
    carol.keyboard.press("Enter")
    expect(carol.locator("#console .xterm-rows")).to_contain_text("Linux", timeout=20000)
    shoot(carol, "customer-vps-console")
    phone_carol = signed_in(browser, base, "carol", viewport=PHONE)
    phone_carol.goto(f"{base}/vps/{vpss['shop'].ctid}/")
    shoot(phone_carol, "phone-vps")
    for path, name in (("/notices/", "customer-notices"), ("/account/", "account"), ("/account/2fa/", "two-factor"),
                       ("/account/tokens/", "api-tokens"), ("/plans/", "customer-plans")):
        carol.goto(base + path)
        shoot(carol, name)
    carol.goto(f"{base}/nodes/")
    shoot(carol, "customer-not-allowed")

    # Usage: the shop's graphs from real samples, and the usage reports (the 5-minute rollup job run now).
    samples_since(vpss["shop"], busy_since, 3)
    carol.goto(f"{base}/vps/{vpss['shop'].ctid}/")
    expect(carol.locator("#vps-graphs canvas")).to_have_count(4)
    expect(carol.locator("#vps-graphs .graphs-status")).to_contain_text("points")
    carol.wait_for_load_state("networkidle")
    carol.locator("#vps-graphs").screenshot(path=str(OUT / "customer-vps-graphs.png"))
    carol.locator("#vps-usage").screenshot(path=str(OUT / "customer-vps-usage.png"))
    acme.goto(f"{base}/budget/")  # granted, allocated and used, with the shop busy
    shoot(acme, "reseller-budget")
    rollups.rollup(Rollup.FIVE_MINUTES, now=timezone.now() + datetime.timedelta(minutes=5))
    acme.goto(f"{base}/usage/?days=1")
    shoot(acme, "reseller-usage")
    admin.goto(f"{base}/usage/?days=1&group=reseller")
    shoot(admin, "admin-usage")

    # Phone size
    phone = signed_in(browser, base, "acme", viewport=PHONE)
    shoot(phone, "phone-dashboard")
    phone.get_by_role("button", name="Menu").click()
    shoot(phone, "phone-menu")
    phone.goto(f"{base}/users/")
    shoot(phone, "phone-customers")
    phone_admin = signed_in(browser, base, "admin", viewport=PHONE)
    phone_admin.goto(f"{base}/nodes/")
    shoot(phone_admin, "phone-nodes")

