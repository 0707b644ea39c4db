"""Placement of new VPSs, their addresses from the node's pools, and root credentials (services, real PostgreSQL)."""

from __future__ import annotations

import base64
import struct

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import override_settings
from django.utils import timezone

from panel.core.models import Operation
from panel.nodes import ippools
from panel.nodes.choices import NodeState
from panel.nodes.models import IPAddress, Node
from panel.plans import budgets
from panel.plans import services as plans
from panel.plans.models import Allocation
from panel.vps import addresses, placement, receivers, secrets, services
from panel.vps.choices import VpsState
from panel.vps.models import VPS
from tests.panel.tenants import make_tenants
from worker import protocol

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

GIB = 2**30


def up_node(name: str, memory: int, templates: list[str] | None = None) -> Node:
    facts = {"templates": templates} if templates is not None else {}
    return Node.objects.create(name=name, state=NodeState.UP, last_seen=timezone.now(), facts=facts,
                               capacity={"memory_available": memory})


def ssh_key(kind: str = "ssh-ed25519", comment: str = "alice@laptop") -> str:
    blob = struct.pack(">I", len(kind)) + kind.encode() + struct.pack(">I", 32) + b"k" * 32
    return f"{kind} {base64.b64encode(blob).decode()} {comment}".strip()


@pytest.fixture
def t():
    return make_tenants()


@pytest.fixture
def plan(t):
    budgets.grant(t.admin, t.reseller1, vps_count=None, ram=None, disk=None, cpus=None, ipv4=None,
                  ipv6_prefixes=None, traffic=None)
    return plans.create_plan(t.admin, name="p1", ram=GIB, ipv4_count=2, ipv6_count=1)


def pools_for(node: Node, v4: str = "198.51.100.0/28", v6: str = "2001:db8:1::/62") -> None:
    ippools.create_pool(name=f"{node.name}-v4", family=4, network=v4, gateway=v4.replace(".0/", ".1/").split("/")[0],
                        node=node)
    ippools.create_pool(name=f"{node.name}-v6", family=6, network=v6, unit_prefix=64, node=node)


def test_placement_takes_the_up_node_with_most_free_memory_that_has_the_template(t):
    small = up_node("small", 4 * GIB, ["busybox", "debian-12"])
    big = up_node("big", 16 * GIB, ["debian-12"])
    for name, state in (("off", NodeState.DISABLED), ("gone", NodeState.DOWN), ("new", NodeState.NEW)):
        Node.objects.filter(pk=up_node(name, 64 * GIB, ["busybox"]).pk).update(state=state)
    assert placement.choose_node("busybox", GIB) == small
    assert placement.choose_node("debian-12", GIB) == big
    unknown = up_node("unknown", 8 * GIB)  # reports no templates list yet: accepted for any template
    assert placement.choose_node("busybox", GIB) == unknown
    with pytest.raises(ValidationError, match="No node that is up has the template alpine"):
        Node.objects.filter(name="unknown").delete()
        placement.choose_node("alpine")
    with pytest.raises(ValidationError, match="No node has"):
        placement.choose_node("debian-12", 32 * GIB)


def test_placed_vpss_count_against_free_memory_until_the_next_heartbeat(t):
    a = up_node("a", 10 * GIB)
    b = up_node("b", 8 * GIB)
    first, _ = services.create_vps(t.admin, customer=t.customer0, template="busybox", hostname="one",
                                   limits={"ram": 4 * GIB})
    second, _ = services.create_vps(t.admin, customer=t.customer0, template="busybox", hostname="two",
                                    limits={"ram": 4 * GIB})
    assert (first.node, second.node) == (a, b)  # a had 10, then 6 < b's 8
    Node.objects.filter(pk=a.pk).update(last_seen=timezone.now())  # the heartbeat counts them now
    assert placement.free_memory(Node.objects.get(pk=a.pk)) == 10 * GIB


def test_no_node_is_a_clear_error(t):
    with pytest.raises(ValidationError, match="No node is up"):
        services.create_vps(t.admin, customer=t.customer0, template="busybox", hostname="x")
    assert not VPS.objects.exists()


def test_create_allocates_the_plans_addresses_and_sends_them(t, plan):
    node = up_node("n1", 8 * GIB)
    pools_for(node)
    vps, op = services.create_vps(t.reseller1, customer=t.customer1, template="busybox", hostname="web",
                                  plan=plan, ssh_keys=[ssh_key()])
    v4, v6 = addresses.cidrs(vps)
    assert v4 == ["198.51.100.2/32", "198.51.100.3/32"] and v6 == ["2001:db8:1::/64"]
    assert op.payload["ipv4"] == v4 and op.payload["ipv6"] == v6
    request = services.build_request(vps, protocol.TASK_VPS_SET, op)
    assert (request.ipv4, request.ipv6, request.ssh_keys, request.nameservers) == (v4, v6, [ssh_key()], [])
    with override_settings(CTPANEL_VPS_NAMESERVERS=["198.51.100.53", "2001:db8::53"]):
        assert services.build_request(vps, protocol.TASK_VPS_SET, op).nameservers == ["198.51.100.53",
                                                                                     "2001:db8::53"]
    assert set(IPAddress.objects.filter(assigned_to=vps.budget_holder).values_list("owner", flat=True)) == {
        t.customer1.pk}


def test_addresses_and_budget_are_released_when_the_create_fails_or_the_vps_is_destroyed(t, plan):
    node = up_node("n1", 8 * GIB)
    pools_for(node)
    failed, op = services.create_vps(t.reseller1, customer=t.customer1, template="nope", hostname="f", plan=plan)
    kept, _ = services.create_vps(t.reseller1, customer=t.customer1, template="busybox", hostname="k", plan=plan)
    Operation.objects.filter(pk=op.pk).update(status=protocol.Status.FAILED, error_code="kernel.not_found")
    receivers.on_operation_reported(Operation, Operation.objects.get(pk=op.pk))
    failed.refresh_from_db()
    assert failed.state == VpsState.DESTROYED
    assert not addresses.of(failed).exists() and not Allocation.objects.filter(holder=failed.budget_holder).exists()
    assert len(addresses.cidrs(kept)[0]) == 2
    destroy = services.destroy(t.customer1, kept)
    Operation.objects.filter(pk=destroy.pk).update(status=protocol.Status.SUCCEEDED,
                                                   result={"state": protocol.VpsState.ABSENT})
    receivers.on_operation_reported(Operation, Operation.objects.get(pk=destroy.pk))
    assert not IPAddress.objects.exists() and not Allocation.objects.exists()


def test_an_exhausted_pool_fails_the_create_and_leaves_nothing(t, plan):
    node = up_node("n1", 8 * GIB)
    ippools.create_pool(name="tiny", family=4, network="203.0.113.0/30", node=node)  # 2 hosts
    ippools.create_pool(name="v6", family=6, network="2001:db8:2::/64", unit_prefix=64, node=node)
    services.create_vps(t.reseller1, customer=t.customer1, template="busybox", hostname="a", plan=plan)
    with pytest.raises(ValidationError, match="No free IPv4 address for node n1"):
        services.create_vps(t.reseller1, customer=t.customer1, template="busybox", hostname="b", plan=plan)
    assert VPS.objects.count() == 1 and Allocation.objects.count() == 1 and IPAddress.objects.count() == 3


def test_change_plan_reserves_anew_and_follows_the_addresses(t, plan):
    node = up_node("n1", 8 * GIB)
    pools_for(node)
    vps, _ = services.create_vps(t.reseller1, customer=t.customer1, template="busybox", hostname="a", plan=plan)
    bigger = plans.create_plan(t.admin, name="p2", ram=2 * GIB, ipv4_count=1, ipv6_mode="addresses", ipv6_count=2)
    ippools.create_pool(name="n1-v6one", family=6, network="2001:db8:9::/120", unit_prefix=128, node=node)
    op = services.change_plan(t.customer1, vps, bigger)
    assert op.action == protocol.TASK_VPS_SET and op.payload["limits"]["ram"] == 2 * GIB
    assert Allocation.objects.get(holder=vps.budget_holder).ram == 2 * GIB
    assert addresses.cidrs(vps) == (["198.51.100.2/32"], ["2001:db8:9::1/128", "2001:db8:9::2/128"])
    budgets.grant(t.reseller1, t.customer1, ram=GIB)
    with pytest.raises(budgets.BudgetExceeded):
        services.change_plan(t.customer1, vps, plans.create_plan(t.admin, name="p3", ram=3 * GIB))


def test_suspend_stops_and_locks_out_the_customer(t, plan):
    node = up_node("n1", 8 * GIB)
    pools_for(node)
    vps, _ = services.create_vps(t.reseller1, customer=t.customer1, template="busybox", hostname="a", plan=plan)
    with pytest.raises(PermissionDenied):
        services.suspend(t.customer1, vps, "no")
    with pytest.raises(PermissionDenied):
        services.suspend(t.reseller2, vps, "not yours")
    op = services.suspend(t.reseller1, vps, "unpaid invoice")
    assert op.action == protocol.TASK_VPS_STOP and vps.desired_state == "stopped"
    for action in (services.start, services.stop, services.restart, services.destroy):
        with pytest.raises(PermissionDenied, match="suspended: unpaid invoice"):
            action(t.customer1, vps)
    with pytest.raises(PermissionDenied):
        services.start(t.admin, vps)  # nobody runs a suspended VPS
    assert services.stop(t.admin, vps).action == protocol.TASK_VPS_STOP
    assert services.unsuspend(t.admin, vps).action == protocol.TASK_VPS_START
    assert services.stop(t.customer1, vps).action == protocol.TASK_VPS_STOP


def test_root_password_travels_only_as_a_hash_in_its_own_request(t, plan, caplog, monkeypatch):
    node = up_node("n1", 8 * GIB)
    pools_for(node)
    vps, _ = services.create_vps(t.reseller1, customer=t.customer1, template="busybox", hostname="a", plan=plan)
    sent = []  # the requests as they leave for the broker
    monkeypatch.setattr(services, "dispatch", lambda op, request: sent.append(request))
    op = services.set_root_password(t.customer1, vps, "correct horse battery")
    later = services.set_hostname(t.customer1, vps, "b")
    hashed = sent[0].root_password_hash
    assert hashed.startswith("$6$") and secrets.crypt.crypt("correct horse battery", hashed) == hashed
    assert sent[1].root_password_hash == ""
    op.refresh_from_db()
    assert op.payload["root_password_hash"] == "********"
    assert "correct horse" not in str(op.payload) + str(later.payload) + caplog.text
    with pytest.raises(ValidationError):
        services.set_root_password(t.customer1, vps, "short")


def test_ssh_keys_are_validated_single_line_openssh_keys():
    assert secrets.validate_ssh_keys([ssh_key(), ssh_key("ssh-rsa", "")]) == [ssh_key(), ssh_key("ssh-rsa", "")]
    bad = [ssh_key() + "\nssh-ed25519 AAAA", "ssh-dss AAAAB3NzaC1kc3M= x", "ssh-ed25519 not-base64!",
           ssh_key().replace("ssh-ed25519 ", "ssh-rsa ", 1), "ssh-ed25519", ssh_key(comment="caf\u00e9")]
    for key in bad:
        with pytest.raises(ValidationError):
            secrets.validate_ssh_keys([key])


def test_placement_skips_a_node_whose_default_pool_has_less_free_disk_than_the_vps_needs(t):
    full = up_node("full", 16 * GIB, ["busybox"])
    roomy = up_node("roomy", 4 * GIB, ["busybox"])
    for node, free in ((full, GIB), (roomy, 50 * GIB)):
        Node.objects.filter(pk=node.pk).update(
            facts={"templates": ["busybox"], "storage": {"default": "fast", "pools": []}},
            capacity={"memory_available": node.capacity["memory_available"],
                      "pools": {"fast": {"total": 100 * GIB, "used": 100 * GIB - free, "free": free},
                                "other": {"total": 100 * GIB, "used": 0, "free": 100 * GIB}}})
    assert placement.choose_node("busybox", GIB) == full  # most free memory; no disk asked
    assert placement.choose_node("busybox", GIB, 2 * GIB) == roomy  # only the default pool counts
    with pytest.raises(ValidationError, match=f"No node has {60 * GIB} bytes of disk free"):
        placement.choose_node("busybox", GIB, 60 * GIB)
    up_node("silent", 2 * GIB, ["busybox"])  # reports no pools: not refused for disk
    assert placement.choose_node("busybox", GIB, 60 * GIB).name == "silent"
