"""A customer's VPS in Chromium, against the ASGI server and a real node worker that really runs it."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from kernel.config import NodeConfig as KernelNodeConfig
from kernel.runtime import Runtime
from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.nodes import ippools
from panel.nodes import services as nodes
from panel.nodes.choices import NodeState
from panel.nodes.models import Node
from panel.plans import budgets
from panel.plans import services as plans
from panel.vps import services
from panel.vps.choices import VpsState
from panel.vps.models import VPS, next_ctid
from panel.vps.placement import has_template
from tests.browser.test_login import PASSWORD, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GB = 10**9
MiB = 2**20
OPERATION_TIMEOUT = 90000  # ms: a first create also builds the busybox template on the node


def node_ready(name: str, timeout: float = 60) -> Node:
    """The node once a heartbeat turned it up with the busybox template (what placement looks for)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node = Node.objects.get(name=name)
        if node.state == NodeState.UP and node.capacity.get("memory_available") and has_template(node, "busybox"):
            return node
        time.sleep(0.2)
    raise AssertionError(f"node {name} did not come up within {timeout:g} s")


def node_runtime(stack) -> Runtime:
    env = stack.node_env
    return Runtime(KernelNodeConfig(node=env["CTPANEL_NODE_NAME"], state_root=env["CTPANEL_STATE_ROOT"],
                                    cgroup_prefix=env["CTPANEL_CGROUP_PREFIX"]))


def finished(page: Page, action: str) -> None:
    """The progress card of `action` on this page reached Succeeded (it polls; the page is not reloaded)."""
    progress = page.locator("#operation-progress")
    expect(progress).to_contain_text(action)
    expect(progress).to_contain_text("Succeeded", timeout=OPERATION_TIMEOUT)


def test_customer_creates_starts_renames_stops_and_destroys_a_vps(page, live_panel, stack):
    admin = User.objects.create_user("boss", password=PASSWORD, role=Role.ADMIN)
    acme = User.objects.create_user("acme", password=PASSWORD, role=Role.RESELLER)
    carol = User.objects.create_user("carol", password=PASSWORD, role=Role.CUSTOMER, owner=acme)
    frank = User.objects.create_user("frank", password=PASSWORD, role=Role.CUSTOMER, owner=acme)
    budgets.grant(admin, acme, vps_count=10, ram=None, disk=None, cpus=None, ipv4=None, ipv6_prefixes=None,
                  traffic=None)
    budgets.grant(acme, carol, vps_count=1, ram=GB, disk=10 * GB, cpus=1, ipv4=1, ipv6_prefixes=0, traffic=None)
    plans.create_plan(acme, name="acme-tiny", description="For trying out", ram=256 * MiB, diskspace=GB, cpus=1,
                      ipv4_count=1, ipv6_count=0)
    node, _ = nodes.register_node(stack.node_name)
    ippools.create_pool(name="v4", family=4, network="198.51.100.0/28", gateway="198.51.100.1", node=node)
    franks = VPS.objects.create(ctid=next_ctid(), node=node, customer=frank, hostname="franks-secret",
                                template="busybox", state=VpsState.STOPPED)
    rt = node_runtime(stack)
    rt.templates.ensure_busybox()
    node_ready(stack.node_name)

    log_in(page, live_panel, "carol")
    expect(page.get_by_role("heading", name="Your VPSs")).to_be_visible()
    expect(page.get_by_text("franks-secret")).to_have_count(0)

    # Create from the reseller's plan, not started yet
    page.get_by_role("navigation", name="Main").get_by_role("link", name="VPSs").click()
    page.get_by_role("link", name="Add").click()
    page.get_by_label("Plan").select_option(label="acme-tiny — For trying out")
    expect(page.get_by_label(re.compile("BusyBox"))).to_be_checked()
    page.get_by_label("Host name").fill("web1")
    page.get_by_label("Start it when created").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("web1")
    finished(page, "Create")
    state = page.locator("#vps-state")
    expect(state).to_contain_text("Stopped", timeout=OPERATION_TIMEOUT)
    expect(state).to_contain_text("198.51.100.")
    vps = VPS.objects.get(hostname="web1")
    assert (vps.customer, vps.node) == (carol, node)
    assert rt.status(vps.ctid).exists and not rt.status(vps.ctid).running

    # Start: the progress card follows the operation, the state turns Running
    state.get_by_role("button", name="Start").click()
    finished(page, "Start")
    expect(state).to_contain_text("Running", timeout=OPERATION_TIMEOUT)
    assert rt.status(vps.ctid).running

    # Host name, also inside the VPS
    page.get_by_role("textbox", name="Host name").fill("web2.example.com")
    page.get_by_role("button", name="Change host name").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("web2.example.com")
    finished(page, "Change")
    assert rt.exec(vps.ctid, ["cat", "/etc/hostname"], timeout=10).stdout.decode().strip() == "web2.example.com"

    # Stop
    state.get_by_role("button", name="Stop").click()
    finished(page, "Stop")
    expect(state).to_contain_text("Stopped", timeout=OPERATION_TIMEOUT)
    assert not rt.status(vps.ctid).running

    # Started from elsewhere (the API, another tab): this page shows it without a reload
    page.evaluate("window.notReloaded = true")
    services.start(carol, VPS.objects.get(pk=vps.pk))
    expect(state).to_contain_text("Running", timeout=OPERATION_TIMEOUT)
    expect(state.get_by_role("button", name="Stop")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True

    # The history has it all
    page.get_by_role("link", name="All operations of this VPS").click()
    for action, count in (("node.vps.create", 1), ("node.vps.start", 2), ("node.vps.set", 1), ("node.vps.stop", 1)):
        expect(page.get_by_role("row").filter(has_text=action)).to_have_count(count)
    page.get_by_role("link", name="Back to web2.example.com").click()

    # Destroy, confirmed by typing the host name
    page.get_by_role("link", name="Destroy this VPS…").click()
    page.get_by_label(re.compile("Type the host name")).fill("web2.example.com")
    page.get_by_role("button", name="Destroy").click()
    finished(page, "Destroy")
    expect(page.locator("#vps-state")).to_contain_text("Destroyed", timeout=OPERATION_TIMEOUT)
    assert not rt.status(vps.ctid).exists
    page.get_by_role("navigation", name="Main").get_by_role("link", name="VPSs").click()
    expect(page.get_by_role("link", name="web2.example.com")).to_have_count(0)

    # Another customer's VPS is not there for her
    expect(page.get_by_text("franks-secret")).to_have_count(0)
    response = page.goto(f"{live_panel}/vps/{franks.ctid}/")
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Not found"))
