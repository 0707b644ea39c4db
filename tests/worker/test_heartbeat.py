"""A real node worker's heartbeat carries its pools with their disk space, its capabilities and its
templates with version and checksum, as the panel stores them (protocol 1.4)."""

from __future__ import annotations

import hashlib
import os

import pytest

from kernel.config import NodeConfig as KernelNodeConfig
from kernel.templates import TemplateCache
from panel.nodes import services as nodes
from panel.nodes.models import Node
from tests.services import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_heartbeat_carries_pools_capabilities_and_template_checksums(stack, tmp_path):
    name = f"{stack.node_name}-hb"
    state = tmp_path / "state"
    cache = TemplateCache(KernelNodeConfig(node=name, state_root=str(state)))
    busybox = cache.ensure_busybox()
    with open(busybox.tarball, "rb") as fh:
        checksum = "sha256:" + hashlib.sha256(fh.read()).hexdigest()
    nodes.register_node(name)
    stack.start_node_worker(tmp_path, name=f"worker-{name}", CTPANEL_NODE_NAME=name, CTPANEL_STATE_ROOT=str(state),
                            CTPANEL_CGROUP_PREFIX=f"{stack.node_env['CTPANEL_CGROUP_PREFIX']}-hb",
                            CTPANEL_HEARTBEAT_SECONDS="1")
    node = wait_for(lambda: Node.objects.filter(name=name, facts__has_key="storage").first(), 60, "a 1.4 heartbeat")

    assert node.facts["template_info"]["busybox"] == {
        "version": busybox.meta.version, "checksum": checksum, "distro": "busybox",
        "release": busybox.meta.release, "arch": os.uname().machine}
    assert "busybox" in node.facts["templates"]

    storage = node.facts["storage"]
    assert storage["default"] == "default"
    assert [(p["name"], p["driver"]) for p in storage["pools"]] == [("default", "dir")]
    assert storage["pools"][0]["capabilities"]["snapshots"] is False

    disk = node.capacity["pools"]["default"]
    st = os.statvfs(state)  # the dir pool lives under the state root
    assert disk["total"] == st.f_blocks * st.f_frsize > 0
    assert 0 < disk["used"] < disk["total"] and 0 < disk["free"] < disk["total"]
    assert disk["used"] + disk["free"] <= disk["total"]
    assert abs(disk["free"] - st.f_bavail * st.f_frsize) < 2**30  # other writers on the machine move it a little

    caps = node.facts["capabilities"]
    assert caps["cgroup_version"] == node.facts["cgroup_version"] in (1, 2)
    assert caps["freeze"] is True and "freeze" in caps["cgroup"]
    assert caps["cgroup_hierarchies"] and caps["quota"] == []  # the dir driver enforces no disk quota
