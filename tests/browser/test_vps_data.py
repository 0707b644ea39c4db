"""Reinstall and backups in Chromium, against the ASGI server and a real node worker."""

from __future__ import annotations

import crypt
import re

import pytest
from playwright.sync_api import expect

from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.nodes import services as nodes
from panel.plans import budgets
from panel.plans import services as plans
from panel.vps import services
from tests.browser.test_login import PASSWORD, log_in
from tests.browser.test_vps_pages import OPERATION_TIMEOUT, finished, node_ready, node_runtime
from tests.services import finished as operation_finished

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MiB = 2**20
ROOT_PASSWORD = "fresh root password"


def test_customer_reinstalls_after_confirming_and_backs_up(page, live_panel, stack):
    admin = User.objects.create_user("boss", password=PASSWORD, role=Role.ADMIN)
    acme = User.objects.create_user("acme", password=PASSWORD, role=Role.RESELLER)
    carol = User.objects.create_user("carol", password=PASSWORD, role=Role.CUSTOMER, owner=acme)
    budgets.grant(admin, acme, vps_count=None, ram=None, disk=None, cpus=None, ipv4=None, ipv6_prefixes=None,
                  traffic=None)
    plan = plans.create_plan(acme, name="acme-small", ram=128 * MiB, diskspace=256 * MiB, ipv4_count=0,
                             ipv6_count=0, backup_slots=1)
    rt = node_runtime(stack)
    rt.templates.ensure_busybox()
    node, _ = nodes.register_node(stack.node_name)
    node_ready(stack.node_name)
    vps, op = services.create_vps(acme, customer=carol, node=node, template="busybox", hostname="blog", plan=plan)
    operation_finished(op)
    assert rt.exec(vps.ctid, ["sh", "-c", "echo draft > /root/post"], timeout=30).returncode == 0

    log_in(page, live_panel, "carol")
    page.goto(f"{live_panel}/vps/{vps.ctid}/")
    page.get_by_role("link", name="Reinstall…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Reinstall of blog")
    expect(page.get_by_label(re.compile("BusyBox"))).to_be_checked()
    page.get_by_label("New root password").fill(ROOT_PASSWORD)
    page.get_by_label("The same password again").fill(ROOT_PASSWORD)

    # The confirmation: the host name typed wrong is refused, and nothing happens on the node
    page.get_by_label("Type the host name to confirm").fill("blgo")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reinstall").click()
    expect(page.get_by_text("Type blog to confirm.")).to_be_visible()
    assert rt.exec(vps.ctid, ["cat", "/root/post"], timeout=30).stdout.decode().strip() == "draft"

    # ...and a dismissed dialog sends nothing either
    page.get_by_label("New root password").fill(ROOT_PASSWORD)
    page.get_by_label("The same password again").fill(ROOT_PASSWORD)
    page.get_by_label("Type the host name to confirm").fill("blog")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Reinstall").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Reinstall of blog")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reinstall").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("blog")
    finished(page, "Reinstall")
    expect(page.locator("#vps-state")).to_contain_text("Running", timeout=OPERATION_TIMEOUT)
    status = rt.status(vps.ctid)
    assert status.running
    assert rt.exec(vps.ctid, ["cat", "/root/post"], timeout=30).returncode != 0
    shadow = rt.exec(vps.ctid, ["cat", "/etc/shadow"], timeout=30).stdout.decode()
    root_hash = next(line.split(":")[1] for line in shadow.splitlines() if line.startswith("root:"))
    assert crypt.crypt(ROOT_PASSWORD, root_hash) == root_hash

    # A backup from the card; its one slot is then in use
    card = page.locator("#vps-data")
    expect(card).to_contain_text("No backups.")
    card.get_by_role("button", name="Back up now").click()
    finished(page, "Back up")
    card = page.locator("#vps-data")
    expect(card.get_by_role("button", name=re.compile("Restore the backup"))).to_have_count(1,
                                                                                         timeout=OPERATION_TIMEOUT)
    expect(card.get_by_role("button", name="Back up now")).to_be_disabled()
    assert len(vps.backups.all()) == 1
    operation_finished(services.destroy(carol, vps))
    assert not rt.status(vps.ctid).exists
