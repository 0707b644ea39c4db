"""Node usage sampling end to end: a running VPS's counters reach the panel's usage tables."""

import time

import pytest

from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.nodes import services as nodes
from panel.usage.models import Beancounter, Sample
from panel.vps import services

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_running_vps_is_sampled_into_the_panel(stack, tmp_path):
    name = f"{stack.node_name}-u"
    state_root = str(tmp_path / "state")
    stack.start_node_worker(tmp_path, name="usage-node-worker", CTPANEL_NODE_NAME=name,
                            CTPANEL_STATE_ROOT=state_root, CTPANEL_USAGE_SECONDS="1",
                            CTPANEL_CGROUP_PREFIX=stack.node_env["CTPANEL_CGROUP_PREFIX"] + "-u")
    node, _ = nodes.register_node(name)
    admin = User.objects.create_user("root-admin", role=Role.ADMIN)
    alice = User.objects.create_user("alice", role=Role.CUSTOMER)
    vps, op = services.create_vps(admin, customer=alice, node=node, template="busybox", hostname="sampled",
                                  limits={"numproc": 64})
    try:
        wait_for(lambda: (op.refresh_from_db() or op.is_terminal), 60, "the start")
        assert op.status == "succeeded", op.error_message
        samples = wait_for(lambda: list(Sample.objects.filter(vps=vps)[:2]) if
                           Sample.objects.filter(vps=vps).count() >= 2 else None, 30, "two samples")
        assert all(s.epoch for s in samples)
        numproc = wait_for(lambda: Beancounter.objects.filter(vps=vps, resource="numproc").first(), 30, "numproc")
        assert numproc.held >= 1
        assert Beancounter.objects.filter(vps=vps, resource="physpages", held__gt=0).exists()
    finally:
        op = services.destroy(admin, vps)
        wait_for(lambda: (op.refresh_from_db() or op.is_terminal), 60, "the destroy")
