"""Node usage sampling end to end: a running VPS's counters reach the panel's usage tables."""


import pytest

from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.nodes import services as nodes
from panel.usage.models import Beancounter, Sample
from panel.vps import services
from tests.services import terminal, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


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
        assert terminal(op).status == "succeeded", op.error_message
        samples = wait_for(lambda: list(Sample.objects.filter(vps=vps)[:2]) if
                           Sample.objects.filter(vps=vps).count() >= 2 else None, 30, "two samples")
        assert all(s.epoch for s in samples)
        numproc = wait_for(lambda: Beancounter.objects.filter(vps=vps, resource="numproc").first(), 30, "numproc")
        assert numproc.held >= 1
        assert Beancounter.objects.filter(vps=vps, resource="physpages", held__gt=0).exists()
    finally:
        terminal(services.destroy(admin, vps))
