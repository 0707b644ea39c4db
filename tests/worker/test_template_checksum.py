"""The panel sends the template version and checksum its node reported; the node refuses a create or a
reinstall whose template is not the copy in its cache (node.template_mismatch) and changes nothing."""

from __future__ import annotations

import copy
import os

import pytest

from kernel.config import NodeConfig as KernelNodeConfig
from kernel.runtime import Runtime
from kernel.storage.volumes import Storage
from kernel.templates import TemplateCache, sha256_file
from panel.nodes import services as nodes
from panel.nodes.models import Node
from panel.vps import data, services
from panel.vps.models import VPS
from tests.kernel import leftovers
from tests.panel.tenants import make_tenants
from tests.services import finished, terminal, wait_for
from worker import protocol
from worker.config import NodeConfig
from worker.vps import creating_path, storage_config

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MiB = 2**20
WRONG = "sha256:" + "0" * 64


@pytest.fixture
def node(stack, tmp_path):
    """A node of this test's own; it heartbeats once, at start, so the panel's facts stay as the test sets them."""
    name = f"{stack.node_name}-tc"
    env = {**stack.node_env, "CTPANEL_NODE_NAME": name, "CTPANEL_STATE_ROOT": str(tmp_path / "state"),
           "CTPANEL_CGROUP_PREFIX": f"{stack.node_env['CTPANEL_CGROUP_PREFIX']}-tc", "CTPANEL_HEARTBEAT_SECONDS": "600"}
    config = NodeConfig.from_env(env)
    kernel_config = KernelNodeConfig(node=name, state_root=config.state_root, cgroup_prefix=config.cgroup_prefix)
    TemplateCache(kernel_config).ensure_busybox()  # in the first heartbeat's facts
    nodes.register_node(name)
    worker = stack.start_node_worker(tmp_path, name=f"worker-{name}", **env)
    panel_node = wait_for(lambda: Node.objects.filter(name=name, facts__template_info__has_key="busybox").first(),
                          60, "the node's heartbeat with its templates")
    yield panel_node, Runtime(kernel_config, storage=Storage(kernel_config, storage_config(config, kernel_config)))
    worker.stop()


def report_wrong_checksum(panel_node: Node) -> None:
    facts = copy.deepcopy(panel_node.facts)
    facts["template_info"]["busybox"]["checksum"] = WRONG
    Node.objects.filter(pk=panel_node.pk).update(facts=facts)
    panel_node.refresh_from_db()


def test_a_create_or_reinstall_of_another_template_copy_is_refused_and_changes_nothing(node):
    panel_node, rt = node
    t = make_tenants()
    real = rt.templates.get("busybox")
    assert panel_node.facts["template_info"]["busybox"]["checksum"] == real.meta.checksum == sha256_file(real.tarball)
    limits = {"ram": 128 * MiB, "diskspace": 64 * MiB}

    kept, op = services.create_vps(t.admin, customer=t.customer1, node=panel_node, template="busybox",
                                   hostname="kept", limits=limits)
    finished(op)
    assert (op.payload["template_version"], op.payload["template_checksum"]) == (real.meta.version,
                                                                                  real.meta.checksum)
    rt.exec(kept.ctid, ["sh", "-c", "echo mine > /root/data"], timeout=10)
    init_pid = rt.status(kept.ctid).init_pid

    report_wrong_checksum(panel_node)
    refused, op = services.create_vps(t.admin, customer=t.customer1, node=panel_node, template="busybox",
                                      hostname="refused", limits=limits)
    op = terminal(op)
    assert op.payload["template_checksum"] == WRONG
    assert (op.status, op.error_code) == ("failed", protocol.ErrorCode.TEMPLATE_MISMATCH), op.error_message
    assert f"this node has {real.meta.version} ({real.meta.checksum})" in op.error_message
    assert rt.registry.find(refused.ctid) is None and rt.storage.find(refused.ctid) is None
    assert leftovers.of(rt, refused.ctid) == [] and not os.path.exists(creating_path(rt, refused.ctid))
    refused.refresh_from_db()
    assert refused.state == "destroyed"

    op = terminal(data.reinstall(t.admin, VPS.objects.get(pk=kept.pk), template="busybox", password="S3cret-pass"))
    assert (op.status, op.error_code) == ("failed", protocol.ErrorCode.TEMPLATE_MISMATCH), op.error_message
    assert rt.status(kept.ctid).init_pid == init_pid
    assert rt.exec(kept.ctid, ["cat", "/root/data"], timeout=10).stdout == b"mine\n"
    assert rt.templates.get("busybox").meta.checksum == real.meta.checksum  # the cache was not touched either

    finished(services.destroy(t.admin, VPS.objects.get(pk=kept.pk)))
