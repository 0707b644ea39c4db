"""Issue 7's network benchmark: TCP throughput and round-trip latency to a VPS, printed as a table.

    .venv/bin/python -m bench.network [--seconds 3] [--runs 5] [--pings 1000]   (repository root)

Everything runs in network namespaces made here (removed at the end); nothing touches the
real host's network. In the bench's node namespace (the host side of VPS networking):

    node ns ── ve… (routed, nft anti-spoofing + counters) ── VPS venet0 203.0.113.10
            ── ctpbnbr0 (isolated bridge, 198.51.100.1/24) ── veth ── LXC container 198.51.100.2
            ── up0 ── eth0 of a test host 203.0.113.2 (reaches the VPS routed, by proxy ARP)
    a fresh namespace's loopback (127.0.0.1)

Throughput: iperf3 (Debian's), `-t SECONDS`, both directions, median of `--runs`; the
paths take turns within each run. The VPS and container ends are the host's iperf3 in their network
namespace only (`nsenter --net`), as the busybox rootfs has none. Latency: busybox
`ping -A -c N` (next echo as soon as the reply is in), the median of the runs' average
RTTs (after a warm-up of 100). The same busybox rootfs for the VPS and the LXC container
(privileged, `lxc.net.0.type = veth` on the bridge). Last, the VPS path again without the
VPS's netdev table (anti-spoofing and counters), beside LXC: what those chains cost.
Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import tempfile
import time

from kernel import archive
from kernel import syscalls as sc
from kernel.config import NodeConfig
from kernel.errors import KernelError
from kernel.net.config import NetConfig, VpsNet
from kernel.net.ip import IP
from kernel.net.network import Network
from kernel.run import run
from kernel.runtime import CreateSpec, Runtime

NODE, PEER, LOOP = "ctpbn-node", "ctpbn-peer", "ctpbn-loop"
VPS4, NODE4, PEER4 = "203.0.113.10", "203.0.113.1", "203.0.113.2"
BR4, LXC4 = "198.51.100.1", "198.51.100.2"
CTID = 7100
LOOPBACK = "host loopback (fresh namespace, 127.0.0.1)"
VPS_NODE = "VPS <- node namespace (one veth, routed)"
LXC_NODE = "LXC <- node namespace (one veth, isolated bridge)"
VPS_PEER = "VPS <- test host (two veths, routed, proxy ARP)"
VPS_BARE = "VPS <- node namespace, its netdev table removed"
LXC_AGAIN = "LXC <- node namespace (again, beside the previous row)"

LXC_CONFIG = """lxc.uts.name = {name}
lxc.rootfs.path = dir:{rootfs}
lxc.init.cmd = /sbin/init
lxc.net.0.type = veth
lxc.net.0.link = ctpbnbr0
lxc.net.0.flags = up
lxc.net.0.ipv4.address = {addr}/24
lxc.apparmor.profile = unconfined
lxc.mount.auto = proc:mixed sys:ro cgroup:mixed
lxc.console.path = none
lxc.tty.max = 0
lxc.pty.max = 16
"""


def ns(name: str, *argv: str, check: bool = True, timeout: float = 120) -> str:
    return run(["ip", "netns", "exec", name, *argv], check=check, timeout=timeout).stdout


def iperf(client_ns: str, server_netns_path: str, addr: str, seconds: int, *, reverse: bool) -> float:
    """Gbit/s received, one run: a one-off iperf3 server in `server_netns_path`, a client in `client_ns`."""
    run(["nsenter", f"--net={server_netns_path}", "iperf3", "-s", "-1", "-D", "-B", addr, "-p", "5299"])
    args = ["iperf3", "-c", addr, "-p", "5299", "-t", str(seconds), "-J", *(["-R"] if reverse else [])]
    for _ in range(100):
        data = json.loads(ns(client_ns, *args, check=False, timeout=seconds + 60) or "{}")
        if "end" in data and "error" not in data:
            return data["end"]["sum_received"]["bits_per_second"] / 1e9
        time.sleep(0.05)
    raise RuntimeError(f"iperf3 to {addr} never connected")


def rtt(client_ns: str, addr: str, count: int) -> float:
    out = ns(client_ns, "busybox", "ping", "-A", "-q", "-c", str(count), addr, timeout=120)
    found = re.search(r"min/avg/max = [\d.]+/([\d.]+)/", out)
    if not found:
        raise RuntimeError(f"no ping summary: {out!r}")
    return float(found.group(1))


def measure(paths: dict[str, tuple[str, str, str]], args: argparse.Namespace) -> dict[str, tuple[float, float, float]]:
    """Per path (client ns, server netns, address): median Gbit/s client→server and server→client,
    and the median of the runs' mean ping RTTs in µs. Paths take turns within every run, so a load change on this
    shared machine hits them alike."""
    up: dict[str, list[float]] = {name: [] for name in paths}
    down: dict[str, list[float]] = {name: [] for name in paths}
    pings: dict[str, list[float]] = {name: [] for name in paths}
    for client, _, addr in paths.values():
        rtt(client, addr, 100)  # warm-up: neighbour entries, caches, a just-started init settling
    for _ in range(args.runs):
        for name, (client, server, addr) in paths.items():
            up[name].append(iperf(client, server, addr, args.seconds, reverse=False))
            down[name].append(iperf(client, server, addr, args.seconds, reverse=True))
            pings[name].append(rtt(client, addr, args.pings))
    return {
        name: (statistics.median(up[name]), statistics.median(down[name]), statistics.median(pings[name]) * 1000)
        for name in paths
    }


def lxc_start(top: str, rootfs_tar: str) -> tuple[str, str]:
    """A privileged LXC container on the isolated bridge, started inside the node namespace."""
    path = os.path.join(top, "lxc")
    base = os.path.join(path, "bench")
    os.makedirs(os.path.join(base, "rootfs"))
    archive.unpack(rootfs_tar, os.path.join(base, "rootfs"))
    with open(os.path.join(base, "config"), "w", encoding="ascii") as fh:
        fh.write(LXC_CONFIG.format(name="bench", rootfs=os.path.join(base, "rootfs"), addr=LXC4))
    ns(NODE, "lxc-start", "-P", path, "-n", "bench", "-d")
    ns(NODE, "lxc-wait", "-P", path, "-n", "bench", "-s", "RUNNING", "-t", "30")
    pid = ns(NODE, "lxc-info", "-P", path, "-n", "bench", "-pH").strip()
    return path, f"/proc/{pid}/ns/net"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pings", type=int, default=1000)
    args = parser.parse_args()
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    top = tempfile.mkdtemp(prefix="ctpanel-bench-net-")
    node = NodeConfig(node="benchnet", state_root=os.path.join(top, "state"), cgroup_prefix="ctpanel-bench-net",
                      idmap_registry=os.path.join(top, "ids.json"))  # fmt: skip
    for name in (NODE, PEER, LOOP):
        run(["ip", "netns", "add", name])
    network = Network(node, NetConfig(host_netns=NODE, uplink="up0"))
    rt = Runtime(node, lxcfs=None, network=network)
    lxc_path = ""
    results: dict[str, tuple[float, float, float]] = {}
    try:
        with IP(NODE) as h:
            h.veth_add("up0", "eth0", peer_netns=PEER)
            h.bridge_add("ctpbnbr0")
        network.setup_node()
        with IP(NODE) as h:
            for link in ("lo", "up0", "ctpbnbr0"):
                h.link_set(link, up=True)
            h.addr_add("up0", f"{NODE4}/24")
            h.addr_add("ctpbnbr0", f"{BR4}/24")
        with IP(PEER) as p:
            p.link_set("lo", up=True)
            p.link_set("eth0", up=True)
            p.addr_add("eth0", f"{PEER4}/24")
        with IP(LOOP) as lo:
            lo.link_set("lo", up=True)
        rt.templates.ensure_busybox()
        rt.create(CreateSpec(ctid=CTID, template="busybox"))
        network.configure(CTID, VpsNet(ips=(VPS4,)))
        rt.start(CTID)
        vps_ns = f"/proc/{rt.status(CTID).init_pid}/ns/net"
        lxc_path, lxc_ns = lxc_start(top, rt.templates.get("busybox").tarball)
        results = measure(
            {
                LOOPBACK: (LOOP, f"/run/netns/{LOOP}", "127.0.0.1"),
                VPS_NODE: (NODE, vps_ns, VPS4),
                LXC_NODE: (NODE, lxc_ns, LXC4),
                VPS_PEER: (PEER, vps_ns, VPS4),
            },
            args,
        )
        # What the anti-spoofing and counter chains cost: the same path without them.
        network.traffic(fold=CTID)
        network.nft.delete_table("netdev", f"{network.prefix}_{CTID}")
        results.update(measure({VPS_BARE: (NODE, vps_ns, VPS4), LXC_AGAIN: (NODE, lxc_ns, LXC4)}, args))
    finally:
        if lxc_path:
            ns(NODE, "lxc-stop", "-P", lxc_path, "-n", "bench", "-k", check=False)
        with contextlib.suppress(KernelError):
            rt.stop(CTID, fast=True)
        with contextlib.suppress(KernelError):
            network.forget(CTID)
        with contextlib.suppress(KernelError):
            rt.destroy(CTID)
        with contextlib.suppress(KernelError):
            network.teardown_node()
        for name in (NODE, PEER, LOOP):
            run(["ip", "netns", "del", name], check=False)
        for mount in rt.cgroups.hierarchies().values():
            for leftover in (os.path.join(mount, node.cgroup_prefix), os.path.join(mount, "lxc.pivot")):
                with contextlib.suppress(OSError):
                    os.rmdir(leftover)
        shutil.rmtree(top, ignore_errors=True)
    width = max(len(name) for name in results)
    print(f"{'path':<{width}}  {'to server Gbit/s':>16}  {'from server Gbit/s':>18}  {'ping RTT µs':>11}")
    for name, (up, down, us) in results.items():
        print(f"{name:<{width}}  {up:16.2f}  {down:18.2f}  {us:11.1f}")
    vps, lxc = results[VPS_NODE], results[LXC_NODE]
    print(f"VPS/LXC throughput: {vps[0] / lxc[0]:.2f}x to, {vps[1] / lxc[1]:.2f}x from (target >= 0.95x); "
          f"latency {vps[2] / lxc[2]:.2f}x (target <= 1.05x)")  # fmt: skip


if __name__ == "__main__":
    main()
