"""Anti-spoofing, host protection, live --ipdel and clean-up, with named nft counters asserting
which rule hit. The node's rp_filter is loose (conftest), so routing alone stops nothing."""

from __future__ import annotations

import ipaddress
import json
import os
import struct
import subprocess
import sys
from dataclasses import replace

import pytest

from kernel.net.config import VpsNet, eui64_link_local, make_mac
from kernel.net.ip import IP
from kernel.net.network import Network
from tests.kernel.net.conftest import HOST_ADDR4, PEER_ADDR4, PEER_ADDR6, Lab, in_ns, send_frames, sh, vps_addrs

pytestmark = pytest.mark.kernel


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def test_unassigned_and_foreign_sources_are_dropped(lab: Lab) -> None:
    a4, a6 = vps_addrs(0)
    b4, _ = vps_addrs(1)
    a = lab.vps(VpsNet(ips=(a4, a6)))
    lab.vps(VpsNet(ips=(b4,)))
    assert lab.ping(a, PEER_ADDR4, source=a4)
    assert lab.counters(a)["venet0_bad_ip4"] == 0
    # An address A's root adds itself: never leaves the host side of the veth.
    lab.vsh(a, "ip addr add 203.0.113.99/32 dev venet0")
    assert not lab.ping(a, PEER_ADDR4, source="203.0.113.99")
    hit = lab.counters(a)["venet0_bad_ip4"]
    assert hit >= 1
    # B's address, sent by busybox ping's raw ICMP socket.
    lab.vsh(a, f"ip addr add {b4}/32 dev venet0")
    assert not lab.ping(a, PEER_ADDR4, source=b4)
    assert lab.counters(a)["venet0_bad_ip4"] > hit
    # The same for IPv6.
    lab.vsh(a, "sysctl -qw net.ipv6.conf.venet0.accept_dad=0; ip addr add 2001:db8:1::99/128 dev venet0")
    code, _ = lab.vsh(a, f"ping -c 1 -W 2 -I 2001:db8:1::99 {PEER_ADDR6}")
    assert code != 0
    assert lab.counters(a)["venet0_bad_ip6"] >= 1
    assert lab.ping(a, PEER_ADDR6, source=a6)  # the assigned address still works


def test_router_advertisement_and_vlan_frames_are_dropped(lab: Lab) -> None:
    a4, _ = vps_addrs(0)
    a = lab.vps(VpsNet(ips=(a4,)))
    src = make_mac(a, "venet0")
    host = lab.network.registry.get(a).interfaces["venet0"]
    with IP(lab.host) as h:
        host_mac = h.link(host).mac  # type: ignore[union-attr]
    link_local = ipaddress.IPv6Address(eui64_link_local(src)).packed
    all_nodes = ipaddress.IPv6Address("ff02::1").packed
    icmp = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)  # RA: hop limit 64, lifetime 1800 s
    ra = (
        _mac("33:33:00:00:00:01") + _mac(src) + b"\x86\xdd"
        + struct.pack("!IHBB", 6 << 28, len(icmp), 58, 255) + link_local + all_nodes + icmp
    )  # fmt: skip
    ipv4 = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0, bytes(4), bytes(4)) + bytes(8)
    tagged = _mac(host_mac) + _mac(src) + b"\x81\x00" + struct.pack("!H", 7) + b"\x08\x00" + ipv4
    before = lab.counters(a)
    send_frames(lab, a, "venet0", [ra, tagged])
    after = lab.counters(a)
    assert after["venet0_ra"] == before["venet0_ra"] + 1
    assert after["venet0_bad_type"] == before["venet0_bad_type"] + 1
    assert after["venet0_bad_ip6"] == before["venet0_bad_ip6"]  # the RA rule hit, nothing later
    # A forged source MAC is the first rule to catch anything.
    send_frames(lab, a, "venet0", [_mac(host_mac) + _mac("02:00:00:00:00:01") + b"\x08\x00" + ipv4])
    assert lab.counters(a)["venet0_bad_mac"] == before["venet0_bad_mac"] + 1


_SERVER = (
    "import socket\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 8080)); s.listen(8)\n"
    "while True:\n    c, _ = s.accept(); c.sendall(b'hello-from-node'); c.close()\n"
)


def test_host_service_is_closed_unless_opened(lab: Lab) -> None:
    a4, _ = vps_addrs(0)
    a = lab.vps(VpsNet(ips=(a4,)))
    server = subprocess.Popen(["ip", "netns", "exec", lab.host, sys.executable, "-c", _SERVER])
    try:
        in_ns(lab.peer, "busybox", "sh", "-c", f"for i in 1 2 3 4 5 6 7 8 9 10; do busybox nc -w 1 {HOST_ADDR4} 8080 "
              "</dev/null | grep -q hello && exit 0; sleep 0.2; done; exit 1")  # fmt: skip
        _, out = lab.vsh(a, f"nc -w 2 {HOST_ADDR4} 8080 </dev/null")
        assert "hello-from-node" not in out
        assert lab.counters(a)["host"] >= 1
        opened = Network(lab.network.node, replace(lab.network.net, open_tcp=(8080,)))
        opened.setup_node()
        _, out = lab.vsh(a, f"nc -w 2 {HOST_ADDR4} 8080 </dev/null")
        assert "hello-from-node" in out
    finally:
        server.kill()
        server.wait()


def test_ipdel_stops_traffic_at_once_and_stop_cleans_up(lab: Lab) -> None:
    a4, a6 = vps_addrs(0)
    b4, _ = vps_addrs(1)
    a = lab.vps(VpsNet(ips=(a4, a6)))
    b = lab.vps(VpsNet(ips=(b4,)))
    assert lab.ping(a, PEER_ADDR4)
    lab.network.del_ip(a, a4)
    assert in_ns(lab.peer, "busybox", "ping", "-c", "1", "-W", "1", a4, check=False).returncode != 0
    # A's root takes the address back (the last IPv4 address took the route and the gateway's
    # neighbour entry with it): its first packet, an ARP request with that sender, is dropped.
    lab.vsh(a, f"ip addr add {a4}/32 dev venet0; ip route add default via 169.254.0.1 dev venet0 onlink")
    assert not lab.ping(a, PEER_ADDR4, source=a4)
    assert lab.counters(a)["venet0_bad_arp"] >= 1
    lab.network.add_ip(a, a4)
    assert lab.ping(a, PEER_ADDR4, source=a4)

    names = lab.network.registry.get(a).interfaces
    lab.stop(a)
    with IP(lab.host) as h:
        links = {link.name for link in h.links()}
        assert not set(names.values()) & links
        assert all(r.startswith(b4) or "fe80" in r for r in h.routes(lab.network.registry.get(b).interfaces["venet0"]))
    proxies = sh("ip", "-n", lab.host, "-j", "neigh", "show", "proxy", "dev", "up0").stdout
    assert [entry["dst"] for entry in json.loads(proxies)] == [b4]
    tables = lab.network.nft.tables()
    assert ("netdev", f"{lab.network.prefix}_{a}") not in tables
    assert ("netdev", f"{lab.network.prefix}_{b}") in tables
    node = lab.network.nft.list("table", "inet", lab.network.prefix)
    assert not [i for i in node if "chain" in i and i["chain"]["name"].startswith(f"v{a}_")]
    assert [i for i in node if "chain" in i and i["chain"]["name"].startswith(f"v{b}_")]
    assert not os.path.exists(lab.network._live_path(a))
    assert lab.ping(b, PEER_ADDR4)
