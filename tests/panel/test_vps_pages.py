"""The VPS pages: 3 roles x 2 tenants, another tenant's VPS answers 404, actions go through the services.

Nothing reaches a node here: operations are dispatched after commit, and
these tests run inside a transaction that never commits. The browser tier
(tests/browser/test_vps_pages.py) drives the same pages against a real node.
"""

from __future__ import annotations

import base64
import csv
import datetime
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
from panel.usage.models import Beancounter, FailEvent, Sample, TrafficPeriod
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


# --- root password, SSH keys, reverse DNS, suspension --------------------------------------------

def ed25519_key(seed: int, comment: str = "me@laptop") -> str:
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + bytes([seed]) * 32
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"


def test_root_password_is_checked_and_never_kept(t, vpss):
    vps = vpss["customer1"]
    client = client_for(t.customer1)
    differ = client.post(f"/vps/{vps.ctid}/password/", {"password": "s3cret-horse", "again": "s3cret-house"})
    assert differ.status_code == 400 and "The two passwords differ." in differ.content.decode()
    short = client.post(f"/vps/{vps.ctid}/password/", {"password": "short", "again": "short"})
    assert short.status_code == 400 and "Use 8 to 128 characters." in short.content.decode()
    assert not Operation.objects.exists()
    response = client.post(f"/vps/{vps.ctid}/password/", {"password": "s3cret-horse", "again": "s3cret-horse"})
    op = Operation.objects.get()
    assert op.action == protocol.TASK_VPS_SET and response["Location"] == f"/vps/{vps.ctid}/?op={op.pk}"
    assert "$6$" not in str(op.payload) and "s3cret-horse" not in str(op.payload)
    assert "s3cret-horse" not in client.get(response["Location"]).content.decode()


def test_ssh_keys_one_per_line(t, vpss):
    vps = vpss["customer1"]
    client = client_for(t.customer1)
    bad = client.post(f"/vps/{vps.ctid}/ssh-keys/", {"ssh_keys": f"{ed25519_key(1)}\nssh-rsa nonsense"})
    assert bad.status_code == 400 and "Key 2:" in bad.content.decode()
    assert not Operation.objects.exists()
    client.post(f"/vps/{vps.ctid}/ssh-keys/", {"ssh_keys": f"{ed25519_key(1)}\r\n\n{ed25519_key(2, 'work')}\n"})
    vps.refresh_from_db()
    assert vps.ssh_keys == [ed25519_key(1), ed25519_key(2, "work")]
    assert Operation.objects.get().action == protocol.TASK_VPS_SET
    assert ed25519_key(2, "work") in client.get(f"/vps/{vps.ctid}/").content.decode()


def test_reverse_dns_of_the_vps_addresses_only(t, vpss, node):
    pool = ippools.create_pool(name="v4", family=4, network="198.51.100.0/28", node=node)
    mine = ippools.allocate(pool, owner=t.customer1, assigned_to=vpss["customer1"].budget_holder)
    theirs = ippools.allocate(pool, owner=t.customer2, assigned_to=vpss["customer2"].budget_holder)
    client = client_for(t.customer1)
    page = client.get(f"/vps/{vpss['customer1'].ctid}/").content.decode()
    assert mine.address in page and theirs.address not in page
    assert f"<code>{mine.address}</code>" in client.get("/vps/").content.decode()  # no "/32"
    url = f"/vps/{vpss['customer1'].ctid}/addresses/{mine.pk}/ptr/"
    assert client.post(url, {"ptr": "not a name"}).status_code == 400
    assert client.post(url, {"ptr": "web1.example.com."})["Location"] == f"/vps/{vpss['customer1'].ctid}/"
    assert IPAddress.objects.get(pk=mine.pk).ptr == "web1.example.com"
    # another VPS's address through my VPS, or another tenant's VPS: not found
    assert client.post(f"/vps/{vpss['customer1'].ctid}/addresses/{theirs.pk}/ptr/", {"ptr": "x.example.com"}
                       ).status_code == 404
    assert client.post(f"/vps/{vpss['customer2'].ctid}/addresses/{theirs.pk}/ptr/", {"ptr": "x.example.com"}
                       ).status_code == 404
    assert IPAddress.objects.get(pk=theirs.pk).ptr == ""


def test_plan_change_offers_the_customers_plans_and_reserves_the_budget(t, node):
    granted(t, t.reseller1, t.customer1, ram=3 * 2**30)
    small, big = small_plan(t.reseller1), small_plan(t.reseller1, name="big", ram=2 * 2**30)
    huge = small_plan(t.reseller1, name="huge", ram=4 * 2**30)
    foreign = small_plan(t.reseller2, name="foreign")
    client = client_for(t.customer1)
    client.post("/vps/add/", {"plan": small.pk, "template": "busybox", "hostname": "web1"})
    vps = VPS.objects.get()
    page = client.get(f"/vps/{vps.ctid}/").content.decode()
    assert ">big<" in page and "foreign" not in page
    assert client.post(f"/vps/{vps.ctid}/plan/", {"plan": foreign.pk}).status_code == 400
    over = client.post(f"/vps/{vps.ctid}/plan/", {"plan": huge.pk})
    assert over.status_code == 400 and "budget" in over.content.decode()
    response = client.post(f"/vps/{vps.ctid}/plan/", {"plan": big.pk})
    vps.refresh_from_db()
    op = Operation.objects.first()
    assert (vps.plan, vps.limits["ram"], op.action) == (big, 2 * 2**30, protocol.TASK_VPS_SET)
    assert response["Location"] == f"/vps/{vps.ctid}/?op={op.pk}"
    assert Allocation.objects.get(holder=vps.budget_holder).ram == 2 * 2**30


def test_the_reseller_changes_a_customers_plan_on_the_vps_page(t, node):
    """The reseller's own view of a customer's VPS offers the customer's plans; the change is
    reserved against the customer's budget like the customer's own."""
    granted(t, t.reseller1, t.customer1, ram=3 * 2**30)
    small, big = small_plan(t.reseller1), small_plan(t.reseller1, name="big", ram=2 * 2**30)
    client_for(t.customer1).post("/vps/add/", {"plan": small.pk, "template": "busybox", "hostname": "web1"})
    vps = VPS.objects.get()
    reseller = client_for(t.reseller1)
    assert ">big<" in reseller.get(f"/vps/{vps.ctid}/").content.decode()
    assert client_for(t.reseller2).post(f"/vps/{vps.ctid}/plan/", {"plan": big.pk}).status_code == 404
    response = reseller.post(f"/vps/{vps.ctid}/plan/", {"plan": big.pk})
    vps.refresh_from_db()
    op = Operation.objects.filter(action=protocol.TASK_VPS_SET).get()
    assert (vps.plan, vps.limits["ram"], op.user) == (big, 2 * 2**30, t.reseller1)
    assert response["Location"] == f"/vps/{vps.ctid}/?op={op.pk}"
    assert Allocation.objects.get(holder=vps.budget_holder).ram == 2 * 2**30


def test_suspension_by_the_reseller_locks_the_customer_out(t, vpss):
    vps = vpss["customer1"]
    customer, reseller = client_for(t.customer1), client_for(t.reseller1)
    assert customer.post(f"/vps/{vps.ctid}/suspend/", {"reason": "mine"}).status_code == 403
    assert client_for(t.reseller2).post(f"/vps/{vps.ctid}/suspend/", {"reason": "x"}).status_code == 404
    assert not Operation.objects.exists()

    response = reseller.post(f"/vps/{vps.ctid}/suspend/", {"reason": "unpaid invoice 2026-11"})
    op = Operation.objects.get()
    assert op.action == protocol.TASK_VPS_STOP and response["Location"] == f"/vps/{vps.ctid}/?op={op.pk}"
    vps.refresh_from_db()
    assert vps.suspended and vps.suspend_reason == "unpaid invoice 2026-11"

    page = customer.get(f"/vps/{vps.ctid}/").content.decode()
    assert "This VPS is suspended" in page and "unpaid invoice 2026-11" in page
    assert "/start/" not in page and "/hostname/" not in page and "/destroy/" not in page
    assert "Suspended" in customer.get("/vps/").content.decode()
    for action in ("start", "stop", "restart"):
        assert customer.post(f"/vps/{vps.ctid}/{action}/").status_code == 403, action
    assert customer.post(f"/vps/{vps.ctid}/hostname/", {"hostname": "x1"}).status_code == 403
    assert Operation.objects.count() == 1

    reseller.post(f"/vps/{vps.ctid}/unsuspend/")
    vps.refresh_from_db()
    assert not vps.suspended
    assert Operation.objects.first().action == protocol.TASK_VPS_START
    assert "This VPS is suspended" not in customer.get(f"/vps/{vps.ctid}/").content.decode()


# --- usage (only what the node reported) ----------------------------------------------------------

def test_usage_part_shows_what_the_node_reported_and_nothing_else(t, vpss):
    vps = vpss["customer1"]
    client = client_for(t.customer1)
    empty = client.get(f"/vps/{vps.ctid}/usage/").content.decode()
    assert "has not reported usage" in empty and "Resource counters" not in empty
    assert "RAM in use" not in client.get("/").content.decode()

    now = timezone.now()
    Sample.objects.create(vps=vps, time=now, epoch="e1", ram_bytes=2**29, disk_bytes=3 * GB, cpu_percent=12.5,
                          processes=17)
    today = timezone.localdate()
    TrafficPeriod.objects.create(vps=vps, start=today - datetime.timedelta(days=3),
                                 end=today + datetime.timedelta(days=27), rx_bytes=600 * GB, tx_bytes=200 * GB,
                                 quota=1000 * GB)
    for resource, held, limit, failcnt in (("numproc", 17, 128, 0), ("numfile", 950, 1000, 0),
                                           ("physpages", 2**28, 2**28, 4), ("kmemsize", 10**9, 2**63 - 1, 0)):
        Beancounter.objects.create(vps=vps, resource=resource, held=held, maxheld=held, barrier=limit, limit=limit,
                                   failcnt=failcnt, updated=now)
    FailEvent.objects.create(vps=vps, time=now, resource="numproc", count=4, held=128, limit=128)

    part = client.get(f"/vps/{vps.ctid}/usage/").content.decode()
    assert "536.87 MB" in part and "12.5 % of one CPU" in part and "17 processes" in part
    assert "800 GB" in part and "of 1 TB" in part and 'aria-label="Traffic this period: 80 %"' in part
    assert '<tr class="row-warn"><th scope="row"><code>numfile</code>' in part
    assert '<tr class="row-bad"><th scope="row"><code>physpages</code>' in part
    assert "<tr><th scope=\"row\"><code>numproc</code>" in part
    assert "Processes and threads reached the limit (128 of 128): 4 requests refused." in part
    kmem = part[part.index("<code>kmemsize</code>"):].split("</tr>")[0]
    assert "1 GB" in kmem and kmem.count("unlimited") == 2  # bytes with units; LONG_MAX is no limit
    assert "<td class=\"nowrap\">128</td>" in part  # counts stay counts

    card = client.get("/dashboard/vpss/").content.decode()
    assert "RAM in use" in card and 'aria-label="Traffic this month: 80 %"' in card
    for viewer in (t.customer2, t.reseller2):
        assert client_for(viewer).get(f"/vps/{vps.ctid}/usage/").status_code == 404
    assert client_for(t.reseller1).get(f"/vps/{vps.ctid}/usage/").status_code == 200


def test_staff_dashboards_list_the_vpss_that_hit_limits_lately(t, vpss):
    now = timezone.now()
    FailEvent.objects.create(vps=vpss["customer1"], time=now, resource="numproc", count=3, held=128, limit=128)
    FailEvent.objects.create(vps=vpss["customer1"], time=now, resource="numproc", count=2, held=128, limit=128)
    FailEvent.objects.create(vps=vpss["customer2"], time=now - datetime.timedelta(days=2), resource="numfile",
                             count=9)
    for viewer, shown in ((t.admin, True), (t.reseller1, True), (t.reseller2, False)):
        page = client_for(viewer).get("/").content.decode()
        assert ("one.example.com</a>: <code>numproc</code> refused 5 requests" in page) == shown, viewer
        assert "numfile" not in page  # older than a day
    assert "Limits hit" not in client_for(t.customer1).get("/").content.decode()
