"""Reconcile finds and removes every kind of leftover of this node, and leaves another node's alone.

Two nodes share one host network namespace (with an uplink) and the machine's id allocator, as two
nodes on one machine do. Each gets, made by hand, one orphan of each kind: a running init whose VPS is
no longer registered (with its cgroups, volume, ids, veth, route and nft table), a host veth carrying
the node's alias with a route and a proxy entry, a VPS nft table with its chains in the node table, and
a mount under the state root. Node A's reconcile reports and removes A's; B's are all still there, and
a VPS A still has keeps running.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass

import pytest

from kernel import syscalls as sc
from kernel.config import NodeConfig as KernelNodeConfig
from kernel.errors import KernelError
from kernel.net import rules
from kernel.net.config import NetConfig, VpsNet
from kernel.net.ip import IP
from kernel.net.network import Network
from kernel.runtime import CreateSpec, Runtime
from kernel.storage.volumes import Storage
from worker import reconcile
from worker.vps import wired

pytestmark = pytest.mark.kernel

UPLINK = "up0"


@dataclass
class Orphans:
    init: int
    veth: int
    nft: int
    mount: int
    addr: str  # routed to the veth orphan, with a proxy entry on the uplink
    link: str


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


def make_orphans(rt: Runtime, ns: str, base: int, n: int) -> Orphans:
    """One orphan of each kind for CTIDs base+1..base+4 of `rt`'s node (`n` tells the nodes' addresses apart)."""
    o = Orphans(init=base + 1, veth=base + 2, nft=base + 3, mount=base + 4, addr=f"203.0.113.{20 + n}",
                link=f"vrc{os.getpid() % 10000}{n}")
    rt.create(CreateSpec(ctid=o.init, template="busybox", hostname="lost.example.com"))
    rt.network.configure(o.init, VpsNet(ips=(f"203.0.113.{30 + n}",)))
    rt.start(o.init)
    rt.registry.remove(o.init)  # the record is lost; the VPS keeps running
    with IP(ns) as host:
        host.veth_add(o.link, o.link + "p")
        host.link_set(o.link, alias=rt.network.owner_alias(o.veth, "venet0"))
        host.link_set(o.link, up=True)
        host.route_add(f"{o.addr}/32", dev=o.link)
        host.neigh_add_proxy(o.addr, dev=UPLINK)
    prefix = rt.network.prefix
    rt.network.nft.batch(f"add table netdev {prefix}_{o.nft}\n"
                         + rules.vps_chains(prefix, o.nft, [], uplink=UPLINK, conntrack_max=0, smtp_block=False))
    point = rt.root_path(o.mount)
    os.makedirs(point)
    sh("mount", "-t", "tmpfs", "-o", "size=1m", "orphan", point)
    return o


def mounted(point: str) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        return any(line.split()[4] == point for line in fh)


def present(rt: Runtime, ns: str, o: Orphans) -> dict[str, bool]:
    """Which of the orphans `o` still exist in the kernel."""
    with IP(ns) as host:
        links = {link.name for link in host.links()}
        routes = host.routes(o.link) if o.link in links else []
    proxies = sh("ip", "-n", ns, "neigh", "show", "proxy", "dev", UPLINK)
    prefix = rt.network.prefix
    node_counters = rt.network.nft.counters("inet", prefix)
    return {
        "init": rt.status(o.init).running,
        "init cgroups": rt.cgroups.exists(o.init),
        "init volume": os.path.exists(rt.volume_path(o.init)) or rt.storage.find(o.init) is not None,
        "init ids": rt.ids.lookup(o.init) is not None,
        "init nft": rt.network.nft.has_table("netdev", f"{prefix}_{o.init}"),
        "veth": o.link in links,
        "route": f"{o.addr}/32" in routes,
        "proxy": o.addr in proxies.split(),
        "nft table": rt.network.nft.has_table("netdev", f"{prefix}_{o.nft}"),
        "nft chains": any(name.startswith(f"v{o.nft}_") for name in node_counters),
        "mount": mounted(rt.root_path(o.mount)),
    }


def node(tmp_path, name: str, ns: str) -> Runtime:
    config = KernelNodeConfig(node=f"rc{os.getpid()}{name}", state_root=str(tmp_path / name),
                              cgroup_prefix=f"ctpanel-rc-{os.getpid()}-{name}")
    storage = Storage(config)
    storage.setup()
    network = Network(config, NetConfig(host_netns=ns, uplink=UPLINK))
    network.setup_node()
    rt = wired(config, storage, network)
    rt.templates.ensure_busybox()
    return rt


@pytest.fixture
def two_nodes(tmp_path):
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)  # the VPS inits are reparented here and reaped at the end
    ns = f"ctprc{os.getpid()}"
    sh("ip", "netns", "add", ns)
    made: list[Runtime] = []
    try:
        with IP(ns) as host:  # no dummy module here: a veth pair stands in for the uplink
            host.veth_add(UPLINK, UPLINK + "p")
            host.link_set(UPLINK, up=True)
        made += [node(tmp_path, "a", ns), node(tmp_path, "b", ns)]
        yield made[0], made[1], ns
    finally:
        for rt in made:
            with contextlib.suppress(KernelError, OSError):
                for ctid in rt.registry.ctids():
                    rt.stop(ctid, fast=True)
                    rt.destroy(ctid)
                reconcile.clean_orphans(rt)
            with contextlib.suppress(KernelError, OSError):
                rt.network.teardown_node()
            for mount in rt.cgroups.hierarchies().values():
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(mount, rt.cgroups.prefix))
        subprocess.run(["ip", "netns", "del", ns], check=False)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass


def test_reconcile_reports_and_removes_each_kind_of_orphan_of_its_node_only(two_nodes):
    rt_a, rt_b, ns = two_nodes
    base = 880_000 + (os.getpid() % 1000) * 10
    kept = base + 9
    rt_a.create(CreateSpec(ctid=kept, template="busybox", hostname="kept.example.com"))
    rt_a.network.configure(kept, VpsNet(ips=("203.0.113.40",)))
    rt_a.start(kept)
    kept_pid = rt_a.status(kept).init_pid
    a, b = make_orphans(rt_a, ns, base, 0), make_orphans(rt_b, ns, base, 1)  # the same CTIDs on both nodes
    assert all(present(rt_a, ns, a).values()) and all(present(rt_b, ns, b).values())

    found = reconcile.orphans(rt_a)
    assert found["inits"] == [a.init]
    assert found["veths"] == [a.init, a.veth]
    assert found["routes"] == [a.init, a.veth]
    assert found["nft"] == [a.init, a.nft]
    assert found["mounts"] == [a.mount]
    assert found["cgroups"] == [a.init] and found["volumes"] == [a.init] and found["id_ranges"] == [a.init]

    assert reconcile.clean_orphans(rt_a) == [a.init, a.veth, a.nft, a.mount]
    assert {kind: ctids for kind, ctids in reconcile.orphans(rt_a).items() if ctids} == {}
    assert not any(present(rt_a, ns, a).values()), present(rt_a, ns, a)
    assert all(present(rt_b, ns, b).values()), present(rt_b, ns, b)  # same CTIDs, another node: untouched
    assert rt_a.status(kept).init_pid == kept_pid
    with IP(ns) as host:
        assert "203.0.113.40/32" in host.routes(rt_a.registry.get(kept).interfaces["venet0"])

    assert reconcile.clean_orphans(rt_b) == [b.init, b.veth, b.nft, b.mount]
    assert not any(present(rt_b, ns, b).values()), present(rt_b, ns, b)
