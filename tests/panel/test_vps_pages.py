"""The VPS pages: 3 roles x 2 tenants, another tenant's VPS answers 404, actions go through the services.

Nothing reaches a node here: operations are dispatched after commit, and
these tests run inside a transaction that never commits. The browser tier
(tests/browser/test_vps_pages.py) drives the same pages against a real node.
"""

from __future__ import annotations

import base64
import csv
import io
import struct

import pytest
from django.utils import timezone

from panel.core.choices import OperationStatus
from panel.core.models import Operation
from panel.nodes import ippools
from panel.nodes.choices import NodeState
from panel.nodes.models import IPAddress, Node
from panel.plans import budgets
from panel.plans import services as plans
from panel.plans.models import Allocation
from panel.vps.choices import VpsState
from panel.vps.models import VPS, next_ctid
from tests.panel.tenants import Tenants, client_for, make_tenants
from worker import protocol

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

VIEWERS = ["admin", "admin2", "reseller1", "reseller2", "customer1", "customer1b", "customer2", "customer0"]
GB = 10**9


@pytest.fixture
def t() -> Tenants:
    return make_tenants()


@pytest.fixture
def node() -> Node:
    return Node.objects.create(name="n1", state=NodeState.UP, last_seen=timezone.now(),
                               capacity={"memory_available": 64 * GB, "memory_total": 64 * GB})


def make_vps(customer, node: Node, hostname: str, state: str = VpsState.RUNNING, plan=None) -> VPS:
    return VPS.objects.create(ctid=next_ctid(), node=node, customer=customer, hostname=hostname, template="busybox",
                              state=state, plan=plan, limits={"ram": 2**30})


@pytest.fixture
def vpss(t, node) -> dict[str, VPS]:
    """One VPS for a customer of each reseller, and one for the admins' own customer."""
    return {"customer1": make_vps(t.customer1, node, "one.example.com"),
            "customer2": make_vps(t.customer2, node, "two.example.com"),
            "customer0": make_vps(t.customer0, node, "zero.example.com")}


def may_view(t: Tenants, viewer_name: str, owner_name: str) -> bool:
    viewer, owner = getattr(t, viewer_name), getattr(t, owner_name)
    return viewer.is_admin or viewer == owner or (viewer.is_reseller and owner.owner_id == viewer.pk)


def granted(t: Tenants, reseller, customer, **limits):
    budgets.grant(t.admin, reseller, vps_count=10, ram=None, disk=None, cpus=None, ipv4=None, ipv6_prefixes=None,
                  traffic=None)
    room = {"vps_count": 2, "ram": 8 * GB, "disk": 100 * GB, "cpus": 4, "ipv4": 2, "ipv6_prefixes": 2,
            "traffic": 1000 * GB}
    return budgets.grant(reseller, customer, **{**room, **limits})


def small_plan(owner, name: str = "small", **fields):
    return plans.create_plan(owner, name=name, **{"ram": 2**30, "diskspace": 10 * GB, "cpus": 1, "ipv4_count": 0,
                                                  "ipv6_count": 0, **fields})


def ed25519_key(seed: int, comment: str = "me@laptop") -> str:
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + bytes([seed]) * 32
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"


# --- who may open what ------------------------------------------------------------------------------

# The VPS matrix, relative to /vps/<ctid>/ ({op} and {address} filled in per VPS); the route guard
# (tests/panel/test_route_matrix.py) fails when a VPS page or action is in neither.
VPS_GETS = ("", "hostname/", "destroy/", "password/", "ssh-keys/", "plan/", "suspend/", "operations/",
            "operations/{op}/", "history/", "usage/", "graphs/?range=hour", "console/", "quotas/",
            "addresses/{address}/ptr/")
# Each POST with a body that would change the VPS if the view let it through.
VPS_POSTS = {
    "start/": {}, "restart/": {}, "pause/": {}, "resume/": {}, "poweroff/": {}, "stop/": {},
    "hostname/": {"hostname": "taken.example.com"},
    "password/": {"password": "taken-password-1", "again": "taken-password-1"},
    "ssh-keys/": {"ssh_keys": "{key}"},
    "addresses/{address}/ptr/": {"ptr": "taken.example.com"},
    "console/ticket/": {},
    "quotas/set/": {"kind": "user", "ident": "7", "space_hard": "1 GB"},
    "quotas/remove/": {"kind": "user", "ident": "1"},
    "suspend/": {"reason": "taken"},
    "unsuspend/": {},
    "plan/": {"plan": "{plan}"},  # last but one: a plan without addresses or quotas takes them away
    "destroy/": {"confirm": "{hostname}"},
}
STAFF_ONLY = {"suspend/", "unsuspend/"}  # customers: 403 on every VPS (not for their role)
# What a viewer who may change the VPS gets: 302 (done, or refused with a message), else these.
VISIBLE_POST = {"console/ticket/": 200}


def vps_snapshot(vps: VPS) -> tuple:
    """What an action could change: the row, its operations, its addresses' reverse names."""
    vps.refresh_from_db()
    return (vps.hostname, vps.plan_id, vps.desired_state, vps.suspended, vps.ssh_keys, vps.ugid_quotas,
            Operation.objects.filter(target_id=str(vps.ctid)).count(),
            sorted(IPAddress.objects.filter(assigned_to=vps.budget_holder).values_list("ptr", flat=True)))


@pytest.mark.parametrize("viewer_name", VIEWERS)
def test_vps_pages_answer_by_tenant(t, vpss, node, viewer_name):
    viewer = getattr(t, viewer_name)
    client = client_for(viewer)
    assert client.get("/vps/").status_code == 200
    assert client.get("/vps/add/").status_code == 200
    pool = ippools.create_pool(name="v4", family=4, network="203.0.113.0/28", node=node)
    plan = small_plan(t.admin, "global-small")
    granted(t, t.reseller1, t.customer1)
    granted(t, t.reseller2, t.customer2)
    wrong = []
    for owner_name, vps in vpss.items():
        owner = getattr(t, owner_name)
        vps.limits = {**vps.limits, "quotaugidlimit": 2}
        vps.ugid_quotas = [{"kind": "user", "id": 1, "space_soft": 0, "space_hard": GB, "inodes_soft": 0,
                            "inodes_hard": 0}]
        vps.save()
        address = ippools.allocate(pool, owner=owner, assigned_to=vps.budget_holder)
        op = Operation.objects.create(action=protocol.TASK_VPS_START, node_name="n1", target_type="vps",
                                      target_id=str(vps.ctid), user=owner)
        ok = may_view(t, viewer_name, owner_name)
        fill = {"op": op.pk, "address": address.pk, "plan": plan.pk, "hostname": vps.hostname,
                "key": ed25519_key(1)}
        for path in VPS_GETS:
            url = f"/vps/{vps.ctid}/{path.format(**fill)}"
            expected = 403 if path in STAFF_ONLY and viewer.is_customer else 200 if ok else 404
            if (status := client.get(url).status_code) != expected:
                wrong.append(f"GET {url}: {status}, expected {expected}")
        before = vps_snapshot(vps)
        for path, body in VPS_POSTS.items():
            url = f"/vps/{vps.ctid}/{path.format(**fill)}"
            fill["hostname"] = VPS.objects.get(pk=vps.pk).hostname  # as the hostname action left it
            data = {k: v.format(**fill) for k, v in body.items()}
            if path in STAFF_ONLY and viewer.is_customer:
                expected = 403
            elif not ok:
                expected = 404
            else:
                expected = VISIBLE_POST.get(path, 302)
            if (status := client.post(url, data).status_code) != expected:
                wrong.append(f"POST {url}: {status}, expected {expected}")
        after = vps_snapshot(vps)
        if not ok and after != before:
            wrong.append(f"{owner_name}'s VPS changed: {before} -> {after}")
        if ok and after[-2] <= before[-2]:
            wrong.append(f"{owner_name}'s VPS: no operation recorded")
    assert wrong == []


@pytest.mark.parametrize("viewer_name", VIEWERS)
def test_lists_dashboard_and_csv_show_only_what_the_viewer_may_view(t, vpss, viewer_name):
    client = client_for(getattr(t, viewer_name))
    shown = {"list": client.get("/vps/").content.decode(), "dashboard": client.get("/").content.decode(),
             "card": client.get("/dashboard/vpss/").content.decode(),
             "csv": client.get("/vps/?export=csv").content.decode()}
    for owner_name, vps in vpss.items():
        for where, text in shown.items():
            if where in ("dashboard", "card") and getattr(t, viewer_name).is_admin:
                continue  # the admins' dashboard counts VPSs instead of listing them
            assert (vps.hostname in text) == may_view(t, viewer_name, owner_name), (where, owner_name)


def test_unknown_vps_and_operation_of_another_vps_are_404(t, vpss):
    client = client_for(t.customer1)
    assert client.get("/vps/999999/").status_code == 404
    other = Operation.objects.create(action=protocol.TASK_VPS_START, node_name="n1", target_type="vps",
                                     target_id=str(vpss["customer2"].ctid), user=t.customer2)
    assert client.get(f"/vps/{vpss['customer1'].ctid}/operations/{other.pk}/").status_code == 404
    assert client.get(f"/vps/{vpss['customer1'].ctid}/?op={other.pk}").status_code == 200
    assert str(other.pk) not in client.get(f"/vps/{vpss['customer1'].ctid}/?op={other.pk}").content.decode()


def test_pages_need_a_login(client, vpss):
    ctid = vpss["customer1"].ctid
    for url in ("/vps/", "/vps/add/", "/dashboard/vpss/", f"/vps/{ctid}/", f"/vps/{ctid}/hostname/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url
    response = client.post(f"/vps/{ctid}/stop/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert not Operation.objects.exists()


def test_actions_are_post_only(t, vpss):
    client = client_for(t.customer1)
    assert client.get(f"/vps/{vpss['customer1'].ctid}/start/").status_code == 405


# --- power and progress ---------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "task", "desired"), [
    ("stop", protocol.TASK_VPS_STOP, "stopped"),
    ("poweroff", protocol.TASK_VPS_STOP, "stopped"),
    ("restart", protocol.TASK_VPS_RESTART, "running"),
    ("pause", protocol.TASK_VPS_PAUSE, "running"),
])
def test_power_buttons_record_an_operation_and_the_page_follows_it(t, vpss, url, task, desired):
    vps = vpss["customer1"]
    client = client_for(t.customer1)
    response = client.post(f"/vps/{vps.ctid}/{url}/")
    op = Operation.objects.get(target_type="vps", target_id=str(vps.ctid))
    assert (op.action, op.user, op.payload["fast"]) == (task, t.customer1, url == "poweroff")
    assert response["Location"] == f"/vps/{vps.ctid}/?op={op.pk}"
    vps.refresh_from_db()
    assert vps.desired_state == desired
    page = client.get(response["Location"]).content.decode()
    assert f'hx-get="/vps/{vps.ctid}/operations/{op.pk}/"' in page


def test_buttons_follow_the_state(t, node):
    client = client_for(t.customer1)
    stopped = make_vps(t.customer1, node, "s1", state=VpsState.STOPPED)
    page = client.get(f"/vps/{stopped.ctid}/").content.decode()
    assert f'action="/vps/{stopped.ctid}/start/"' in page and f'action="/vps/{stopped.ctid}/stop/"' not in page
    running = make_vps(t.customer1, node, "r1")
    page = client.get(f"/vps/{running.ctid}/").content.decode()
    assert f'action="/vps/{running.ctid}/stop/"' in page and f'action="/vps/{running.ctid}/start/"' not in page
    paused = make_vps(t.customer1, node, "p1", state=VpsState.PAUSED)
    assert f'action="/vps/{paused.ctid}/resume/"' in client.get(f"/vps/{paused.ctid}/").content.decode()


def test_a_service_refusal_is_a_message_not_an_error_page(t, vpss):
    vps = vpss["customer1"]  # running: resume is not possible
    client = client_for(t.customer1)
    response = client.post(f"/vps/{vps.ctid}/resume/", follow=True)
    assert response.status_code == 200
    assert "that is not possible now" in response.content.decode()
    assert not Operation.objects.exists()


def test_state_part_polls_and_stops_once_destroyed(t, vpss):
    vps = vpss["customer1"]
    client = client_for(t.customer1)
    part = client.get(f"/vps/{vps.ctid}/", HTTP_HX_REQUEST="true")
    assert part.status_code == 200 and "<html" not in part.content.decode()
    assert "Running" in part.content.decode() and "hx-trigger" in part.content.decode()
    VPS.objects.filter(pk=vps.pk).update(state=VpsState.STOPPED)
    assert "Stopped" in client.get(f"/vps/{vps.ctid}/", HTTP_HX_REQUEST="true").content.decode()
    VPS.objects.filter(pk=vps.pk).update(state=VpsState.DESTROYED)
    assert client.get(f"/vps/{vps.ctid}/", HTTP_HX_REQUEST="true").status_code == 286


def test_a_vps_on_a_silent_node_shows_unknown(t, vpss, node):
    Node.objects.filter(pk=node.pk).update(state=NodeState.DOWN)
    page = client_for(t.customer1).get(f"/vps/{vpss['customer1'].ctid}/").content.decode()
    assert "Unknown" in page and "is not reporting" in page


def test_progress_polls_until_the_operation_ends_and_says_why_it_failed(t, vpss):
    vps = vpss["customer1"]
    client = client_for(t.customer1)
    client.post(f"/vps/{vps.ctid}/restart/")
    op = Operation.objects.get(target_id=str(vps.ctid))
    url = f"/vps/{vps.ctid}/operations/{op.pk}/"
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 200
    Operation.objects.filter(pk=op.pk).update(status=OperationStatus.FAILED, error_code=protocol.ErrorCode.KERNEL_BUSY,
                                              error_message="vps 101 is locked by pid 4242")
    part = client.get(url, HTTP_HX_REQUEST="true")
    text = part.content.decode()
    assert part.status_code == 286 and "hx-get" not in text
    assert protocol.ErrorCode.MESSAGES[protocol.ErrorCode.KERNEL_BUSY] in text
    assert "vps 101 is locked by pid 4242" in text and "kernel.busy" in text
    page = client.get(f"/vps/{vps.ctid}/?op={op.pk}").content.decode()
    assert protocol.ErrorCode.MESSAGES[protocol.ErrorCode.KERNEL_BUSY] in page


def test_history_part_refreshes_until_the_vps_is_gone(t, vpss):
    vps = vpss["customer1"]
    client = client_for(t.customer1)
    client.post(f"/vps/{vps.ctid}/restart/")
    part = client.get(f"/vps/{vps.ctid}/history/", HTTP_HX_REQUEST="true")
    assert part.status_code == 200 and "Restart" in part.content.decode() and "Pending" in part.content.decode()
    assert client_for(t.customer2).get(f"/vps/{vps.ctid}/history/", HTTP_HX_REQUEST="true").status_code == 404
    Operation.objects.update(status=OperationStatus.SUCCEEDED)
    VPS.objects.filter(pk=vps.pk).update(state=VpsState.DESTROYED)
    part = client.get(f"/vps/{vps.ctid}/history/", HTTP_HX_REQUEST="true")
    assert part.status_code == 286 and "Succeeded" in part.content.decode()


def test_history_lists_this_vps_operations_only(t, vpss):
    mine, other = vpss["customer1"], vpss["customer2"]
    client_for(t.customer1).post(f"/vps/{mine.ctid}/stop/")
    client_for(t.admin).post(f"/vps/{mine.ctid}/restart/")
    client_for(t.customer2).post(f"/vps/{other.ctid}/stop/")
    page = client_for(t.customer1).get(f"/vps/{mine.ctid}/operations/").content.decode()
    assert protocol.TASK_VPS_STOP in page and protocol.TASK_VPS_RESTART in page
    assert f"{mine.ctid}" in page and f"vps {other.ctid}" not in page
    assert page.count("<tr>") == 3  # header and two rows


# --- host name and destroy -------------------------------------------------------------------------

def test_hostname_is_validated_then_changed_through_the_service(t, vpss):
    vps = vpss["customer1"]
    client = client_for(t.customer1)
    bad = client.post(f"/vps/{vps.ctid}/hostname/", {"hostname": "not_valid!"})
    assert bad.status_code == 400 and "Enter a host name" in bad.content.decode()
    assert not Operation.objects.exists()
    good = client.post(f"/vps/{vps.ctid}/hostname/", {"hostname": "web2.example.com"})
    op = Operation.objects.get()
    assert (op.action, op.payload["hostname"]) == (protocol.TASK_VPS_SET, "web2.example.com")
    assert good["Location"] == f"/vps/{vps.ctid}/?op={op.pk}"
    vps.refresh_from_db()
    assert vps.hostname == "web2.example.com"


def test_destroy_needs_the_hostname_typed(t, vpss):
    vps = vpss["customer1"]
    client = client_for(t.customer1)
    assert client.post(f"/vps/{vps.ctid}/destroy/", {"confirm": "something else"}).status_code == 400
    assert not Operation.objects.exists()
    response = client.post(f"/vps/{vps.ctid}/destroy/", {"confirm": vps.hostname})
    op = Operation.objects.get()
    assert op.action == protocol.TASK_VPS_DESTROY and response["Location"] == f"/vps/{vps.ctid}/?op={op.pk}"
    vps.refresh_from_db()
    assert vps.desired_state == "absent"


def test_a_destroyed_vps_leaves_the_list_but_keeps_its_page(t, vpss):
    vps = vpss["customer1"]
    VPS.objects.filter(pk=vps.pk).update(state=VpsState.DESTROYED)
    client = client_for(t.customer1)
    assert vps.hostname not in client.get("/vps/").content.decode()
    assert vps.hostname in client.get("/vps/?state=destroyed").content.decode()
    page = client.get(f"/vps/{vps.ctid}/").content.decode()
    assert "Destroyed" in page and "/destroy/" not in page and "/hostname/" not in page


# --- create ---------------------------------------------------------------------------------------

def test_customer_creates_from_a_plan_of_its_reseller(t, node):
    granted(t, t.reseller1, t.customer1)
    plan = small_plan(t.reseller1)
    foreign = small_plan(t.reseller2, name="foreign")
    client = client_for(t.customer1)
    form = client.get("/vps/add/").content.decode()
    assert plan.name in form and foreign.name not in form
    assert 'name="node"' not in form and 'name="customer"' not in form
    refused = client.post("/vps/add/", {"plan": foreign.pk, "template": "busybox", "hostname": "web1",
                                        "start": "on"})
    assert refused.status_code == 400 and not VPS.objects.exists()
    response = client.post("/vps/add/", {"plan": plan.pk, "template": "busybox", "hostname": "web1", "start": "on"})
    vps = VPS.objects.get()
    op = Operation.objects.get()
    assert (vps.customer, vps.node, vps.plan, vps.hostname) == (t.customer1, node, plan, "web1")
    assert op.action == protocol.TASK_VPS_START and response["Location"] == f"/vps/{vps.ctid}/?op={op.pk}"
    assert Allocation.objects.get(holder=vps.budget_holder).customer == t.customer1


def test_create_beyond_the_budget_shows_the_budget_error(t, node):
    granted(t, t.reseller1, t.customer1, ram=GB)
    plan = small_plan(t.reseller1)  # 1 GiB > 1 GB
    response = client_for(t.customer1).post("/vps/add/", {"plan": plan.pk, "template": "busybox",
                                                          "hostname": "web1"})
    assert response.status_code == 400 and not VPS.objects.exists()
    assert 'role="alert"' in response.content.decode()


def test_reseller_creates_only_for_its_own_customers(t, node):
    granted(t, t.reseller1, t.customer1)
    plan = small_plan(t.reseller1)
    client = client_for(t.reseller1)
    form = client.get("/vps/add/").content.decode()
    assert "customer1b" in form and "customer2" not in form and 'name="node"' not in form
    other = client.post("/vps/add/", {"customer": t.customer2.pk, "plan": plan.pk, "template": "busybox",
                                      "hostname": "x1"})
    assert other.status_code == 400 and not VPS.objects.exists()
    client.post("/vps/add/", {"customer": t.customer1.pk, "plan": plan.pk, "template": "busybox", "hostname": "x1"})
    assert VPS.objects.get().customer == t.customer1


def test_admin_picks_the_node_and_no_disabled_one(t, node):
    Node.objects.create(name="off", state=NodeState.DISABLED)
    second = Node.objects.create(name="n2", state=NodeState.UP)
    plan = small_plan(t.admin, name="global")
    client = client_for(t.admin)
    form = client.get("/vps/add/").content.decode()
    assert 'name="node"' in form and ">n2<" in form and ">off<" not in form
    client.post("/vps/add/", {"customer": t.customer0.pk, "plan": plan.pk, "template": "busybox",
                              "hostname": "x1", "node": second.pk})
    assert VPS.objects.get().node == second


# --- the admin's list -------------------------------------------------------------------------------

def test_admin_filters_by_node_state_customer_plan_and_exports_csv(t, node):
    n2 = Node.objects.create(name="n2", state=NodeState.UP)
    plan = small_plan(t.admin, name="global")
    a = make_vps(t.customer1, node, "a.example.com", plan=plan)
    b = make_vps(t.customer2, n2, "b.example.com", state=VpsState.STOPPED)
    client = client_for(t.admin)

    def hostnames(query: str) -> set[str]:
        page = client.get(f"/vps/?{query}").content.decode()
        return {v.hostname for v in (a, b) if v.hostname in page}

    assert hostnames("") == {a.hostname, b.hostname}
    assert hostnames(f"node={n2.pk}") == {b.hostname}
    assert hostnames("state=running") == {a.hostname}
    assert hostnames(f"customer={t.customer2.pk}") == {b.hostname}
    assert hostnames(f"plan={plan.pk}") == {a.hostname}
    export = client.get(f"/vps/?node={node.pk}&export=csv")
    assert export["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(export.content.decode())))
    assert rows[0][:3] == ["ID", "Host name", "State"]
    assert [r[1] for r in rows[1:]] == [a.hostname] and rows[1][4] == "global"


def test_customers_get_no_node_or_customer_filter(t, vpss):
    page = client_for(t.customer1).get("/vps/").content.decode()
    assert 'name="node"' not in page and 'name="customer"' not in page
    page = client_for(t.reseller1).get("/vps/").content.decode()
    assert 'name="node"' not in page and 'name="customer"' in page and "customer2" not in page


def test_node_page_counts_its_vpss(t, vpss, node):
    VPS.objects.filter(pk=vpss["customer2"].pk).update(state=VpsState.DESTROYED)
    page = client_for(t.admin).get(f"/nodes/{node.name}/").content.decode()
    assert f'href="/vps/?node={node.pk}">2 VPSs</a>' in page
