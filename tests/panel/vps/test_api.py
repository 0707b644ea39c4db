"""The VPS API: permissions (3 roles x 2 tenants), create with placement, budgets and Idempotency-Key, actions."""

from __future__ import annotations

import base64
import datetime
import struct

import pytest
from django.core.management import call_command
from django.utils import timezone

from panel.accounts.choices import Role
from panel.core.models import Operation
from panel.core.services import apply_report
from panel.nodes import ippools
from panel.nodes.choices import NodeState
from panel.nodes.models import IPAddress, Node
from panel.plans import budgets
from panel.plans import services as plans
from panel.plans.models import Allocation
from panel.vps import services, tasks
from panel.vps.models import VPS
from tests.panel.tenants import client_for, make_tenants
from worker import protocol

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
JSON = "application/json"
GIB = 2**30
UNLIMITED = {"disk": None, "cpus": None, "ipv4": None, "ipv6_prefixes": None, "traffic": None}
ACTIONS = ("start", "stop", "restart", "pause", "resume", "hostname", "plan", "suspend", "unsuspend", "password",
           "ssh-keys")


def ssh_key() -> str:
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + b"k" * 32
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} me@home"


@pytest.fixture
def world():
    t = make_tenants()
    node = Node.objects.create(name="n1", state=NodeState.UP, last_seen=timezone.now(),
                               capacity={"memory_available": 64 * GIB}, facts={"templates": ["busybox"]})
    ippools.create_pool(name="v4", family=4, network="198.51.100.0/24", node=node)
    ippools.create_pool(name="v6", family=6, network="2001:db8:1::/56", unit_prefix=64, node=node)
    plan = plans.create_plan(t.admin, name="small", ram=GIB, ipv4_count=1, ipv6_count=1)
    for reseller in (t.reseller1, t.reseller2):
        budgets.grant(t.admin, reseller, vps_count=10, ram=None, disk=None, cpus=None, ipv4=None,
                      ipv6_prefixes=None, traffic=None)
    vpss = {}
    for customer in (t.customer1, t.customer1b, t.customer2, t.customer0):
        vpss[customer.username], _ = services.create_vps(t.admin, customer=customer, template="busybox",
                                                         hostname=f"{customer.username}-vps", plan=plan)
    return t, plan, vpss


def visible(viewer, vps: VPS) -> bool:
    """From docs/panel-domain.md: admins all, a reseller its customers', a customer its own."""
    if viewer.role == Role.ADMIN:
        return True
    if viewer.role == Role.RESELLER:
        return vps.customer.owner_id == viewer.pk
    return vps.customer_id == viewer.pk


@pytest.mark.parametrize("viewer_name", ["admin", "admin2", "reseller1", "reseller2", "customer1", "customer2"])
def test_every_vps_is_visible_and_actionable_exactly_to_whom_it_should_be(world, viewer_name):
    t, _plan, vpss = world
    viewer = getattr(t, viewer_name)
    c = client_for(viewer)
    listed = {row["ctid"] for row in c.get("/api/vps/vps/", {"limit": 1000}).json()["results"]}
    expected = {v.ctid for v in vpss.values() if visible(viewer, v)}
    assert listed == expected and expected
    for vps in vpss.values():
        url = f"/api/vps/vps/{vps.ctid}/"
        if visible(viewer, vps):
            assert c.get(url).status_code == 200
            continue
        assert c.get(url).status_code == 404
        for name in ACTIONS:
            assert c.post(f"{url}{name}/", {}, content_type=JSON).status_code == 404, name
        assert c.delete(url).status_code == 404
    assert VPS.objects.filter(desired_state="absent").count() == 0
    assert Operation.objects.filter(action__in=["node.vps.stop", "node.vps.set"]).count() == 0


def test_list_filters_pages_and_shows_addresses(world):
    t, _plan, vpss = world
    c = client_for(t.admin)
    page = c.get("/api/vps/vps/", {"limit": 2, "offset": 1, "ordering": "ctid"}).json()
    assert page["count"] == 4 and [r["ctid"] for r in page["results"]] == sorted(v.ctid for v in vpss.values())[1:3]
    found = c.get("/api/vps/vps/", {"hostname": "customer1b"}).json()["results"]
    assert [r["hostname"] for r in found] == ["customer1b-vps"]
    assert c.get("/api/vps/vps/", {"customer": t.customer2.pk}).json()["count"] == 1
    row = found[0]
    assert row["ipv4"][0].startswith("198.51.100.") and row["ipv6"][0].endswith("::/64")
    assert c.get(f"/api/vps/vps/{row['ctid']}/").json()["ipv4"] == row["ipv4"]


def test_customer_creates_with_placement_budget_and_idempotency_key(world):
    t, plan, _vpss = world
    budgets.grant(t.reseller1, t.customer1, vps_count=2, ram=4 * GIB, **UNLIMITED)
    c = client_for(t.customer1)
    body = {"plan": plan.pk, "template": "busybox", "hostname": "new1", "ssh_keys": [ssh_key()]}
    first = c.post("/api/vps/vps/", body, content_type=JSON, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201, first.content
    data = first.json()
    assert data["node"] == "n1" and data["customer"] == t.customer1.pk and data["ssh_keys"] == [ssh_key()]
    assert c.get(data["operation_url"]).json()["action"] == "node.vps.start"
    again = c.post("/api/vps/vps/", body, content_type=JSON, HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 201 and again.json()["ctid"] == data["ctid"]
    assert again.json()["operation"] == data["operation"]
    other = c.post("/api/vps/vps/", {**body, "hostname": "new2"}, content_type=JSON, HTTP_IDEMPOTENCY_KEY="k-1")
    assert other.status_code == 422
    assert VPS.objects.filter(customer=t.customer1).count() == 2  # the fixture's and new1
    refused = c.post("/api/vps/vps/", {**body, "hostname": "new3"}, content_type=JSON)
    assert refused.status_code == 400 and "VPS count budget of customer" in str(refused.json())
    # another user's key of the same name is another key
    budgets.grant(t.reseller1, t.customer1b, vps_count=3, ram=None, **UNLIMITED)
    assert client_for(t.customer1b).post("/api/vps/vps/", body, content_type=JSON,
                                         HTTP_IDEMPOTENCY_KEY="k-1").status_code == 201
    # keys are kept 24 hours; then the same key names a new create
    assert tasks.expire_idempotency_keys(timezone.now() + datetime.timedelta(hours=23)) == 0
    assert tasks.expire_idempotency_keys(timezone.now() + datetime.timedelta(hours=25)) == 2
    budgets.grant(t.reseller1, t.customer1, vps_count=3, ram=4 * GIB, **UNLIMITED)
    renewed = c.post("/api/vps/vps/", {**body, "hostname": "new4"}, content_type=JSON, HTTP_IDEMPOTENCY_KEY="k-1")
    assert renewed.status_code == 201 and renewed.json()["ctid"] != data["ctid"]


def test_create_refusals(world):
    t, plan, _vpss = world
    c = client_for(t.customer1)
    body = {"plan": plan.pk, "template": "busybox", "hostname": "x"}
    assert c.post("/api/vps/vps/", {**body, "node": "n1"}, content_type=JSON).status_code == 403
    assert c.post("/api/vps/vps/", {**body, "customer": t.customer2.pk}, content_type=JSON).status_code == 400
    assert c.post("/api/vps/vps/", {**body, "template": "alpine"}, content_type=JSON).json() == {
        "node": ["No node that is up has the template alpine."]}
    assert c.post("/api/vps/vps/", {**body, "ssh_keys": ["ssh-rsa AAAA"]}, content_type=JSON).status_code == 400
    r = client_for(t.reseller2).post("/api/vps/vps/", {**body, "customer": t.customer1.pk}, content_type=JSON)
    assert r.status_code == 400 and "customer" in r.json()
    assert VPS.objects.count() == 4


def test_actions_answer_202_with_the_operation(world):
    t, _plan, vpss = world
    vps = vpss["customer1"]
    c = client_for(t.customer1)
    url = f"/api/vps/vps/{vps.ctid}/"
    for name, body, task in (("stop", {"fast": True}, "node.vps.stop"), ("start", {}, "node.vps.start"),
                             ("restart", {}, "node.vps.restart"), ("hostname", {"hostname": "renamed"},
                                                                   "node.vps.set"),
                             ("ssh-keys", {"ssh_keys": [ssh_key()]}, "node.vps.set"),
                             ("password", {"password": "correct horse battery"}, "node.vps.set")):
        response = c.post(f"{url}{name}/", body, content_type=JSON)
        assert response.status_code == 202, (name, response.content)
        op = c.get(response.json()["operation_url"]).json()
        assert (op["action"], op["target_id"]) == (task, str(vps.ctid))
        assert response["Location"] == response.json()["operation_url"]
    assert op["payload"]["root_password_hash"] == "********"
    assert "correct horse" not in str(Operation.objects.values_list("payload", flat=True))
    assert c.post(f"{url}pause/").status_code == 400  # still "being created": not running
    assert c.post(f"{url}hostname/", {"hostname": "bad_name"}, content_type=JSON).status_code == 400
    deleted = c.delete(url)
    assert deleted.status_code == 202 and VPS.objects.get(pk=vps.pk).desired_state == "absent"


def test_plan_change_reserves_the_budget_again(world):
    t, _plan, vpss = world
    vps = vpss["customer1"]
    bigger = plans.create_plan(t.reseller1, name="big", ram=3 * GIB, ipv4_count=2)
    c = client_for(t.customer1)
    response = c.post(f"/api/vps/vps/{vps.ctid}/plan/", {"plan": bigger.pk}, content_type=JSON)
    assert response.status_code == 202, response.content
    assert Allocation.objects.get(holder=vps.budget_holder).ram == 3 * GIB
    assert IPAddress.objects.filter(assigned_to=vps.budget_holder, pool__family=4).count() == 2
    theirs = plans.create_plan(t.reseller2, name="theirs", ram=GIB)
    assert c.post(f"/api/vps/vps/{vps.ctid}/plan/", {"plan": theirs.pk}, content_type=JSON).status_code == 400
    budgets.grant(t.reseller1, t.customer1, vps_count=5, ram=2 * GIB, **UNLIMITED)
    huge = plans.create_plan(t.reseller1, name="huge", ram=8 * GIB)
    refused = c.post(f"/api/vps/vps/{vps.ctid}/plan/", {"plan": huge.pk}, content_type=JSON)
    assert refused.status_code == 400 and "RAM budget" in str(refused.json())


def test_suspension_by_the_reseller_locks_out_the_customer(world):
    t, _plan, vpss = world
    vps = vpss["customer1"]
    url = f"/api/vps/vps/{vps.ctid}/"
    customer, reseller = client_for(t.customer1), client_for(t.reseller1)
    assert customer.post(f"{url}suspend/", {"reason": "x"}, content_type=JSON).status_code == 403
    assert reseller.post(f"{url}suspend/", {"reason": "unpaid"}, content_type=JSON).status_code == 202
    detail = customer.get(url).json()
    assert (detail["suspended"], detail["suspend_reason"], detail["desired_state"]) == (True, "unpaid", "stopped")
    for name in ("start", "restart", "hostname", "password"):
        assert customer.post(f"{url}{name}/", {"hostname": "a", "password": "long enough pw"},
                             content_type=JSON).status_code == 403, name
    assert customer.delete(url).status_code == 403
    assert client_for(t.admin).post(f"{url}start/").status_code == 403
    assert reseller.post(f"{url}unsuspend/", {"start": False}, content_type=JSON).status_code == 204
    assert customer.post(f"{url}start/").status_code == 202


def test_schema_is_valid_and_has_the_vps_paths():
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    t = make_tenants()
    paths = client_for(t.customer1).get("/api/schema/", {"format": "json"}).json()["paths"]
    for path in ("/api/vps/vps/", "/api/vps/vps/{ctid}/", "/api/vps/vps/{ctid}/suspend/",
                 "/api/vps/vps/{ctid}/ssh-keys/", "/api/vps/vps/{ctid}/password/"):
        assert path in paths


@pytest.mark.parametrize("actor_name", ["admin", "reseller1"])
def test_staff_create_act_on_and_delete_a_customers_vps(world, actor_name):
    """The positive path for admins and resellers (customers': above), with the objects it makes and frees."""
    t, plan, _vpss = world
    c = client_for(getattr(t, actor_name))
    counts = (VPS.objects.count(), Allocation.objects.count(), IPAddress.objects.exclude(assigned_to="").count())
    body = {"plan": plan.pk, "template": "busybox", "hostname": "staff1", "customer": t.customer1.pk}
    if actor_name == "admin":
        body["node"] = "n1"
    created = c.post("/api/vps/vps/", body, content_type=JSON)
    assert created.status_code == 201, created.content
    data = created.json()
    assert (data["customer"], data["node"], len(data["ipv4"]), len(data["ipv6"])) == (t.customer1.pk, "n1", 1, 1)
    assert (VPS.objects.count(), Allocation.objects.count(),
            IPAddress.objects.exclude(assigned_to="").count()) == (counts[0] + 1, counts[1] + 1, counts[2] + 2)
    url = f"/api/vps/vps/{data['ctid']}/"
    assert data["ctid"] in {r["ctid"] for r in c.get("/api/vps/vps/", {"limit": 1000}).json()["results"]}
    for name, body in (("stop", {}), ("start", {}), ("restart", {}), ("hostname", {"hostname": "staff2"}),
                       ("suspend", {"reason": "unpaid"})):
        response = c.post(f"{url}{name}/", body, content_type=JSON)
        assert response.status_code == 202, (name, response.content)
    assert c.post(f"{url}unsuspend/", {"start": False}, content_type=JSON).status_code == 204
    vps = VPS.objects.get(ctid=data["ctid"])
    assert (vps.hostname, vps.suspended) == ("staff2", False)
    assert Operation.objects.filter(target_id=str(vps.ctid)).count() == 6  # create, 4 actions, the suspension's stop
    deleted = c.delete(url)
    assert deleted.status_code == 202, deleted.content
    assert c.get(deleted.json()["operation_url"]).json()["action"] == "node.vps.destroy"
    vps.refresh_from_db()
    assert vps.desired_state == "absent"
    destroy = Operation.objects.get(pk=deleted.json()["operation"])
    apply_report(protocol.Report(operation_id=str(destroy.pk), node="n1", status=protocol.Status.SUCCEEDED,
                                 facts={"ctid": vps.ctid, "state": "absent"}))
    assert c.get(url).json()["state"] == "destroyed"
    assert (VPS.objects.exclude(state="destroyed").count(), Allocation.objects.count(),
            IPAddress.objects.exclude(assigned_to="").count()) == counts
