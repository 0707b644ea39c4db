"""Storage, network and beancounters wired in: a VPS made through the panel's services on a node
with an `image` pool and a test-made host network namespace gets its disk limit, its addresses
and its RAM limit, changes RAM live, and leaves nothing behind when destroyed."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable

import pytest

from kernel.config import NodeConfig as KernelNodeConfig
from kernel.net import rules
from kernel.net.ip import IP
from kernel.runtime import Runtime
from kernel.storage import loop
from kernel.storage.volumes import Storage
from panel.nodes import ippools
from panel.nodes import services as nodes
from panel.plans import budgets
from panel.plans import services as plans
from panel.vps import addresses, services
from panel.vps.models import VPS
from tests.kernel import leftovers
from tests.panel.tenants import make_tenants
from tests.panel.vps.test_lifecycle import finished
from worker.config import NodeConfig
from worker.vps import beancounters_path, storage_config

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MiB = 2**20


@pytest.fixture
def wired(stack, tmp_path):
    """A second node worker of this session with an image pool; its runtime as the test sees it."""
    name = f"{stack.node_name}-w"
    env = {**stack.node_env, "CTPANEL_NODE_NAME": name, "CTPANEL_STATE_ROOT": str(tmp_path / "state"),
           "CTPANEL_CGROUP_PREFIX": stack.node_env["CTPANEL_CGROUP_PREFIX"] + "-w",
           "CTPANEL_STORAGE_POOLS": f"img:image:{tmp_path / 'images'}"}
    worker = stack.start_node_worker(tmp_path, name="node-w-worker", **env)
    config = NodeConfig.from_env(env)
    node_config = KernelNodeConfig(node=name, state_root=config.state_root, cgroup_prefix=config.cgroup_prefix)
    rt = Runtime(node_config, storage=Storage(node_config, storage_config(config, node_config)))
    try:
        yield rt, env["CTPANEL_NET_HOST_NETNS"]
    finally:
        worker.stop()
        del stack.processes["node-w-worker"]


def gone(found: Callable[[], list[str]], timeout: float = 30) -> list[str]:
    """What `found` still lists once it is empty or `timeout` passed: the VPS's last processes
    exit after its init, and whoever adopted them reaps them on its own time."""
    deadline = time.monotonic() + timeout
    while (left := found()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def in_ns(ns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=60)


def sh(rt: Runtime, ctid: int, script: str) -> tuple[int, str]:
    result = rt.exec(ctid, ["sh", "-c", script], timeout=60)
    return result.returncode, (result.stdout + result.stderr).decode()


def memory_limit(rt: Runtime, ctid: int) -> str:
    name = "memory.limit_in_bytes" if rt.cgroups.version == 1 else "memory.max"
    with open(os.path.join(rt.cgroups.controller_dir(ctid, "memory"), name)) as fh:
        return fh.read().strip()


def test_a_panel_vps_gets_its_volume_network_and_limits_and_destroy_leaves_nothing(stack, wired):
    rt, netns = wired
    t = make_tenants()
    node, _ = nodes.register_node(rt.config.node)
    ippools.create_pool(name="wired-v4", family=4, network="203.0.113.0/28", gateway="203.0.113.1", node=node)
    ippools.create_pool(name="wired-v6", family=6, network="2001:db8:7::/62", unit_prefix=64, node=node)
    budgets.grant(t.admin, t.reseller1, vps_count=None, ram=None, disk=None, cpus=None, ipv4=None,
                  ipv6_prefixes=None, traffic=None)
    small = plans.create_plan(t.admin, name="small", ram=128 * MiB, diskspace=48 * MiB, ipv4_count=1, ipv6_count=1)
    large = plans.create_plan(t.admin, name="large", ram=192 * MiB, diskspace=48 * MiB, ipv4_count=1, ipv6_count=1)

    vps, op = services.create_vps(t.admin, customer=t.customer1, node=node, template="busybox", hostname="wired",
                                  plan=small)
    finished(op)
    vps.refresh_from_db()
    ctid = vps.ctid
    (cidr4,), (prefix6,) = addresses.cidrs(vps)
    addr4 = cidr4.split("/")[0]
    assert rt.status(ctid).running

    # Disk: the image holds 48 MiB; a write past it fails inside, a small one works.
    code, out = sh(rt, ctid, "dd if=/dev/zero of=/fill bs=1M count=100 conv=fsync")
    assert code != 0 and "No space left on device" in out, out
    code, out = sh(rt, ctid, "rm /fill && dd if=/dev/zero of=/small bs=1M count=4 conv=fsync && echo ok")
    assert code == 0 and "ok" in out.split(), out
    assert rt.storage.get(ctid).limits.space == 48 * MiB

    # Network: the address is on venet0 inside, routed on the node's host side, and answers there.
    code, out = sh(rt, ctid, "ip -o addr show dev venet0; ip route")
    assert code == 0 and addr4 in out and "default via 169.254.0.1" in out, out
    assert in_ns(netns, "busybox", "ping", "-c", "1", "-W", "2", addr4).returncode == 0
    assert prefix6 in in_ns(netns, "ip", "-6", "route", "show", prefix6).stdout
    veths = set(rt.registry.get(ctid).interfaces.values())
    with IP(netns) as host:
        assert veths and veths <= {link.name for link in host.links()}
    table = f"{rules.table_prefix(rt.config.node)}_{ctid}"
    assert table in in_ns(netns, "nft", "list", "tables").stdout

    # Beancounters: the plan's RAM on the VPS's cgroup, and a new plan's RAM live.
    assert memory_limit(rt, ctid) == str(128 * MiB)
    init_pid = rt.status(ctid).init_pid
    finished(services.change_plan(t.admin, vps, large))
    assert memory_limit(rt, ctid) == str(192 * MiB)
    assert rt.status(ctid).init_pid == init_pid

    volume = rt.storage.get(ctid)
    ids = rt.ids.lookup(ctid)
    assert loop.devices_of(rt.storage.pool("img").image(ctid))
    assert ids is not None and os.path.exists(beancounters_path(rt, ctid))
    finished(services.destroy(t.admin, VPS.objects.get(ctid=ctid)))
    assert rt.storage.leftovers(ctid) == []
    assert not os.path.exists(volume.root)
    assert loop.devices_of(rt.storage.pool("img").image(ctid)) == []
    # Zombies aside: without a supervisor (this test's node runs none) the init is a child of the
    # pool process that started it, which does not wait for it; the supervisor reaps its inits
    # (tests/kernel/supervisor). A zombie holds no memory, file, mount or cgroup.
    assert gone(lambda: leftovers.of(rt, ctid, ids.start, zombies=False)) == []
    with IP(netns) as host:
        assert not veths & {link.name for link in host.links()}
    assert table not in in_ns(netns, "nft", "list", "tables").stdout
    assert in_ns(netns, "ip", "-6", "route", "show", prefix6).stdout == ""
    assert not os.path.exists(beancounters_path(rt, ctid))
