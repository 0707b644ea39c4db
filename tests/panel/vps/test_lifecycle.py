"""A VPS's life through the panel's services, real workers and the real kernel, checked on the node at each step."""

from __future__ import annotations

import os

import pytest

from kernel.config import NodeConfig as KernelNodeConfig
from kernel.runtime import Runtime
from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.nodes import services as nodes
from panel.vps import services
from panel.vps.models import VPS
from tests.services import finished, terminal

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def node_runtime(stack) -> Runtime:
    env = stack.node_env
    return Runtime(KernelNodeConfig(node=env["CTPANEL_NODE_NAME"], state_root=env["CTPANEL_STATE_ROOT"],
                                    cgroup_prefix=env["CTPANEL_CGROUP_PREFIX"]))


@pytest.fixture
def people():
    admin = User.objects.create_user("root-admin", role=Role.ADMIN)
    customer = User.objects.create_user("alice", role=Role.CUSTOMER)
    return admin, customer


def is_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def hostname_inside(rt: Runtime, ctid: int) -> str:
    return rt.exec(ctid, ["cat", "/etc/hostname"], timeout=10).stdout.decode().strip()


def test_create_start_set_stop_destroy(stack, node_runtime, people):
    admin, customer = people
    node, _ = nodes.register_node(stack.node_name)
    vps, op = services.create_vps(admin, customer=customer, node=node, template="busybox", hostname="web1",
                                  limits={"ram": 256 * 2**20})
    finished(op)
    vps.refresh_from_db()
    status = node_runtime.status(vps.ctid)
    assert (vps.state, status.running, vps.init_pid) == ("running", True, status.init_pid)
    assert hostname_inside(node_runtime, vps.ctid) == "web1"
    assert node_runtime.registry.get(vps.ctid).panel_managed

    finished(services.set_hostname(customer, vps, "web2.example.com"))
    assert hostname_inside(node_runtime, vps.ctid) == "web2.example.com"

    finished(services.stop(customer, vps))
    vps.refresh_from_db()
    assert (vps.state, node_runtime.status(vps.ctid).running) == ("stopped", False)
    assert not is_alive(status.init_pid)

    finished(services.start(customer, vps))
    vps.refresh_from_db()
    assert vps.state == "running" and vps.init_pid != status.init_pid

    finished(services.restart(customer, vps))
    before, vps = vps.init_pid, VPS.objects.get(pk=vps.pk)
    assert vps.state == "running" and vps.init_pid == node_runtime.status(vps.ctid).init_pid != before
    assert not is_alive(before)

    finished(services.pause(customer, vps))
    vps.refresh_from_db()
    assert (vps.state, node_runtime.status(vps.ctid).frozen) == ("paused", True)
    finished(services.resume(customer, vps))
    vps.refresh_from_db()
    assert (vps.state, node_runtime.status(vps.ctid).frozen) == ("running", False)
    assert hostname_inside(node_runtime, vps.ctid) == "web2.example.com"  # it answers again

    finished(services.destroy(customer, vps))
    vps.refresh_from_db()
    assert vps.state == "destroyed"
    assert node_runtime.registry.find(vps.ctid) is None
    assert not os.path.exists(node_runtime.volume_path(vps.ctid))
    assert not node_runtime.status(vps.ctid).exists


def test_a_create_that_fails_on_the_node_leaves_nothing_and_says_why(stack, node_runtime, people):
    admin, customer = people
    node, _ = nodes.register_node(stack.node_name)
    vps, op = services.create_vps(admin, customer=customer, node=node, template="no-such-template", hostname="x1")
    op = terminal(op)
    assert (op.status, op.error_code) == ("failed", "kernel.not_found")
    vps.refresh_from_db()
    assert vps.state == "destroyed"
    assert node_runtime.registry.find(vps.ctid) is None
    assert not os.path.exists(node_runtime.volume_path(vps.ctid))


def test_customers_act_only_on_their_own_vps(stack, people):
    from django.core.exceptions import PermissionDenied

    admin, customer = people
    other = User.objects.create_user("mallory", role=Role.CUSTOMER)
    node, _ = nodes.register_node(stack.node_name)
    vps, op = services.create_vps(admin, customer=customer, node=node, template="busybox", hostname="own1",
                                  start=False)
    finished(op)
    for action in (services.start, services.stop, services.destroy):
        with pytest.raises(PermissionDenied):
            action(other, vps)
    with pytest.raises(PermissionDenied):
        services.create_vps(other, customer=customer, node=node, template="busybox", hostname="x2")
    assert not VPS.objects.restrict(other).exists()
    finished(services.destroy(admin, vps))
