"""A test "node" network: its own host namespace, an uplink to a test host, and VPSs wired through it.

    test host ns (peer)                 node's host ns (host)                 VPSs
    eth0 203.0.113.2/24  ── veth ──  up0 203.0.113.1/24   ── ve… (routed) ──  venet0 203.0.113.1x
         2001:db8:1::2/64                 2001:db8:1::1/64                        2001:db8:1::1x

The VPS addresses sit in the uplink's subnet: the test host reaches them on-link through
the node's proxy ARP/NDP entries, exactly as a provider's router would. Nothing here touches
the real host's network: everything lives in namespaces this fixture made and removes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from kernel.config import NodeConfig
from kernel.errors import KernelError
from kernel.net.config import NetConfig, VpsNet
from kernel.net.ip import IP
from kernel.net.network import Network
from kernel.runtime import CreateSpec, Runtime
from tests.kernel import leftovers

HOST_ADDR4, HOST_ADDR6 = "203.0.113.1", "2001:db8:1::1"
PEER_ADDR4, PEER_ADDR6 = "203.0.113.2", "2001:db8:1::2"


def vps_addrs(n: int) -> tuple[str, str]:
    return f"203.0.113.{10 + n}", f"2001:db8:1::{10 + n:x}"


def sh(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


def in_ns(ns: str, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *argv, check=check, timeout=timeout)


@dataclass
class Lab:
    host: str
    peer: str
    runtime: Runtime
    network: Network
    made: list[int]
    counter: Callable[[], int]

    def vps(self, spec: VpsNet, *, start: bool = True) -> int:
        ctid = self.counter()
        self.made.append(ctid)
        self.runtime.create(CreateSpec(ctid=ctid, template="busybox", hostname=f"vps{ctid}.example.com"))
        self.network.configure(ctid, spec)
        if start:
            self.runtime.start(ctid)
        return ctid

    def stop(self, ctid: int) -> None:
        self.runtime.stop(ctid, fast=True)
        self.network.release(ctid)

    def vsh(self, ctid: int, script: str, timeout: float = 30) -> tuple[int, str]:
        result = self.runtime.exec(ctid, ["sh", "-c", script], timeout=timeout)
        return result.returncode, (result.stdout + result.stderr).decode()

    def ping(self, ctid: int, addr: str, *, source: str = "") -> bool:
        src = f"-I {source} " if source else ""
        code, _ = self.vsh(ctid, f"ping -c 1 -W 2 {src}{addr}")
        return code == 0

    def vps_netns(self, ctid: int) -> str:
        pid = self.runtime.status(ctid).init_pid
        assert pid
        return f"/proc/{pid}/ns/net"

    def counters(self, ctid: int) -> dict[str, int]:
        """Packets per named counter: the VPS's netdev table and its share of the node table."""
        nft = self.network.nft
        out = {name: c.packets for name, c in nft.counters("netdev", f"{self.network.prefix}_{ctid}").items()}
        node = nft.counters("inet", self.network.prefix)
        out.update({name.split("_", 1)[1]: c.packets for name, c in node.items() if name.startswith(f"v{ctid}_")})
        return out


_ctids = iter(range(5000, 100000))


def _netns_add(name: str) -> None:
    sh("ip", "netns", "add", name)


def _netns_del(name: str) -> None:
    if os.path.exists(f"/run/netns/{name}"):
        sh("ip", "netns", "del", name, check=False)


@pytest.fixture
def netns() -> Iterator[str]:
    """An empty network namespace of this test's own."""
    name = f"ctpns{os.getpid()}"
    _netns_add(name)
    try:
        yield name
    finally:
        _netns_del(name)


@pytest.fixture
def lab(request: pytest.FixtureRequest, node_config: NodeConfig, subreaper: None, runtime: Runtime) -> Iterator[Lab]:
    """The node's configured uplink is up0; `@pytest.mark.parametrize("lab", [None], indirect=True)`
    configures none (the quickstart's default), while up0 and the test host stay wired the same."""
    tag = str(os.getpid())
    host, peer = f"ctpt{tag}h", f"ctpt{tag}p"
    for name in (host, peer):
        _netns_del(name)
        _netns_add(name)
    made: list[int] = []
    network = Network(node_config, NetConfig(host_netns=host, uplink=getattr(request, "param", "up0")))
    try:
        for ns in (host, peer):
            for key in ("all", "default"):
                in_ns(ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.accept_dad=0")
        for key in ("all", "default"):
            in_ns(host, "sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=2")  # loose: routing alone stops nothing
        with IP(host) as h:
            h.veth_add("up0", "eth0", peer_netns=peer)
        network.setup_node()  # forwarding and proxy NDP before the uplink gets its addresses, as on a node
        with IP(host) as h:
            h.link_set("lo", up=True)
            h.link_set("up0", up=True)
            h.addr_add("up0", f"{HOST_ADDR4}/24")
            h.addr_add("up0", f"{HOST_ADDR6}/64", nodad=True)
        with IP(peer) as p:
            p.link_set("lo", up=True)
            p.link_set("eth0", up=True)
            p.addr_add("eth0", f"{PEER_ADDR4}/24")
            p.addr_add("eth0", f"{PEER_ADDR6}/64", nodad=True)
        rt = Runtime(node_config, hooks={"network": [network.start_hook], "files": [network.files_hook]})
        yield Lab(host, peer, rt, network, made, lambda: next(_ctids))
    finally:
        for ctid in made:
            leftovers.force_remove(runtime, ctid)
            with contextlib.suppress(KernelError):
                network.forget(ctid)
        with contextlib.suppress(KernelError):
            network.teardown_node()
        for name in (host, peer):
            _netns_del(name)
    for ctid in made:
        assert leftovers.of(runtime, ctid) == [], f"CT {ctid} left things behind"


_SENDER = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for frame in sys.argv[2:]:
    s.send(bytes.fromhex(frame))
"""


def send_frames(lab: Lab, ctid: int, ifname: str, frames: list[bytes]) -> None:
    """Send raw Ethernet frames from inside the VPS: a process holding only the VPS's user and
    network namespaces (its root's capabilities there), as a VPS root with a packet socket would."""
    pid = lab.runtime.status(ctid).init_pid
    sh(
        "nsenter", f"--user=/proc/{pid}/ns/user", f"--net=/proc/{pid}/ns/net",
        "/usr/bin/python3", "-c", _SENDER, ifname, *(f.hex() for f in frames),
    )  # fmt: skip
