"""Bridged (OpenVZ veth-like) interfaces: two VPSs and the node on one test-made bridge.

    node's host ns: br0 198.51.100.1/24, 2001:db8:2::1/64
        ├── ve… ── A eth0 198.51.100.10, 2001:db8:2::10
        └── ve… ── B eth0 198.51.100.11, 2001:db8:2::11

A forges frames with a packet socket; the named counters of A's netdev table say which rule
dropped each one, and the node's neighbour entries for B show that nothing reached them.
This kernel has br_netfilter (bridge-nf-call-iptables is on in a new namespace) but no nft
bridge conntrack: the per-VPS conntrack cap and host protection reach bridged traffic
through the mark A's netdev chain sets (rules.vps_chains).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator

import pytest

from kernel.net.config import Netif, VpsNet, eui64_link_local, make_mac
from kernel.net.ip import IP
from tests.kernel.net.conftest import Lab, in_ns, send_frames

pytestmark = pytest.mark.kernel

NODE4, NODE6 = "198.51.100.1", "2001:db8:2::1"
A4, A6 = "198.51.100.10", "2001:db8:2::10"
B4, B6 = "198.51.100.11", "2001:db8:2::11"


@pytest.fixture
def bridge(lab: Lab) -> Iterator[str]:
    with IP(lab.host) as h:
        h.bridge_add("br0")
        h.link_set("br0", up=True)
        h.addr_add("br0", f"{NODE4}/24")
        h.addr_add("br0", f"{NODE6}/64", nodad=True)
    # An ARP reply may replace a neighbour entry at once (default: not within 1 s of its last update),
    # so that a forged reply that got through would show in the entry.
    in_ns(lab.host, "sysctl", "-qw", "net.ipv4.neigh.br0.locktime=0")
    yield "br0"


def _bridged(lab: Lab, addr4: str, addr6: str, **extra: object) -> int:
    ctid = lab.vps(VpsNet(netifs=(Netif(name="eth0", bridge="br0", ips=(addr4, addr6)),), **extra))  # type: ignore[arg-type]
    code, out = lab.vsh(
        ctid,
        "sysctl -qw net.ipv6.conf.eth0.accept_dad=0 && "
        f"ip addr add {addr4}/24 dev eth0 && ip addr add {addr6}/64 dev eth0",
    )
    assert code == 0, out
    return ctid


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _node_mac(lab: Lab) -> str:
    with IP(lab.host) as h:
        return h.link("br0").mac  # type: ignore[union-attr]


def _neigh(lab: Lab, addr: str) -> str | None:
    with IP(lab.host) as h:
        return h.neigh(addr, dev="br0")


def _arp_reply(src_mac: str, sender_mac: str, sender_ip: str, dst_mac: str, target_ip: str) -> bytes:
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + _mac(sender_mac) + ipaddress.IPv4Address(sender_ip).packed
    arp += _mac(dst_mac) + ipaddress.IPv4Address(target_ip).packed
    return _mac(dst_mac) + _mac(src_mac) + b"\x08\x06" + arp


def _icmp6(src_mac: str, dst_mac: str, src: str, dst: str, body: bytes) -> bytes:
    """An ICMPv6 frame with a correct checksum and hop limit 255 (what NDP receivers require)."""
    s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    pseudo = s + d + struct.pack("!IxxxB", len(body), 58) + body
    total = sum(struct.unpack(f"!{len(pseudo) // 2}H", pseudo))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    body = body[:2] + struct.pack("!H", ~total & 0xFFFF) + body[4:]
    header = struct.pack("!IHBB", 6 << 28, len(body), 58, 255) + s + d
    return _mac(dst_mac) + _mac(src_mac) + b"\x86\xdd" + header + body


def _ipv4(src_mac: str, dst_mac: str, src: str, dst: str) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0,
                     ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed) + bytes(8)  # fmt: skip
    return _mac(dst_mac) + _mac(src_mac) + b"\x08\x00" + ip


def test_two_bridged_vpss_talk_and_cannot_spoof_each_other(lab: Lab, bridge: str) -> None:
    a = _bridged(lab, A4, A6)
    b = _bridged(lab, B4, B6)
    a_mac, b_mac = make_mac(a, 1), make_mac(b, 1)
    assert lab.network.spec(a).netifs[0].mac == a_mac  # generated from CTID and index, stored
    _, out = lab.vsh(a, "cat /sys/class/net/eth0/address")
    assert out.strip() == a_mac
    for target in (B4, B6, NODE4, NODE6):
        assert lab.ping(a, target), target
    assert lab.ping(b, NODE4) and lab.ping(b, NODE6)
    assert in_ns(lab.host, "busybox", "ping", "-c", "1", "-W", "2", B6, check=False).returncode == 0
    node_mac = _node_mac(lab)
    assert _neigh(lab, B4) == b_mac and _neigh(lab, B6) == b_mac
    before = lab.counters(a)

    # ARP: "B's address is at A's MAC", sent to the node.
    send_frames(lab, a, "eth0", [_arp_reply(a_mac, a_mac, B4, node_mac, NODE4)])
    # Neighbour advertisement for B's IPv6 address with the override flag and A's MAC.
    na = struct.pack("!BBHI", 136, 0, 0, 0x20000000) + ipaddress.IPv6Address(B6).packed + b"\x02\x01" + _mac(a_mac)
    send_frames(lab, a, "eth0", [_icmp6(a_mac, "33:33:00:00:00:01", eui64_link_local(a_mac), "ff02::1", na)])
    # Router advertisement: A as the default router of the bridge.
    ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
    send_frames(lab, a, "eth0", [_icmp6(a_mac, "33:33:00:00:00:01", eui64_link_local(a_mac), "ff02::1", ra)])
    # B's MAC as the source, and B's address as the source.
    send_frames(lab, a, "eth0", [_ipv4(b_mac, node_mac, A4, NODE4), _ipv4(a_mac, node_mac, B4, NODE4)])
    # An 802.1Q-tagged frame.
    tagged = _mac(node_mac) + _mac(a_mac) + b"\x81\x00" + struct.pack("!H", 7) + _ipv4(a_mac, node_mac, A4, NODE4)[12:]
    send_frames(lab, a, "eth0", [tagged])

    after = lab.counters(a)
    for name in ("bad_arp", "bad_nd", "ra", "bad_mac", "bad_ip4", "bad_type"):
        assert after[f"eth0_{name}"] == before[f"eth0_{name}"] + 1, name
    assert _neigh(lab, B4) == b_mac and _neigh(lab, B6) == b_mac
    assert lab.ping(b, NODE4) and lab.ping(a, B4)  # both still work with their own addresses


def test_bridged_vps_conntrack_cap_and_host_protection(lab: Lab, bridge: str) -> None:
    assert in_ns(lab.host, "sysctl", "-n", "net.bridge.bridge-nf-call-iptables").stdout.strip() == "1"
    b = _bridged(lab, B4, B6)
    a = _bridged(lab, A4, A6, conntrack_max=1)
    assert lab.ping(a, NODE4)  # the one tracked connection A may have
    assert not lab.ping(a, B4)  # a second one, bridged to B
    assert lab.counters(a)["ct"] >= 1
    assert lab.counters(b)["ct"] == 0 and lab.ping(b, NODE4)
    # The node's own unopened port, reached over the bridge.
    host_before = lab.counters(b)["host"]
    lab.vsh(b, f"nc -w 1 {NODE4} 8080 </dev/null")
    assert lab.counters(b)["host"] > host_before
    # Stopping A removes its mark entries and nothing of B's.
    lab.stop(a)
    marks = {
        item["map"]["name"]: [e[0] for e in item["map"].get("elem", ())]
        for item in lab.network.nft.list("table", "inet", lab.network.prefix)
        if "map" in item and item["map"]["name"].startswith("vps_mark_")
    }
    assert marks == {"vps_mark_pre": [b], "vps_mark_in": [b]}


def test_netif_add_and_del_live_with_stable_macs(lab: Lab, bridge: str) -> None:
    a = lab.vps(VpsNet())
    lab.network.netif_add(a, Netif(name="eth1", bridge="br0", ips=(A4,)))
    mac = make_mac(a, 1)
    code, out = lab.vsh(a, f"cat /sys/class/net/eth1/address && ip addr add {A4}/24 dev eth1")
    assert code == 0 and out.strip() == mac, out
    assert lab.ping(a, NODE4)
    host_if = lab.network.registry.get(a).interfaces["eth1"]
    lab.network.netif_add(a, Netif(name="eth2", bridge="br0", host_ifname="vzhost2", mac="02:00:5e:00:53:01"))
    with IP(lab.host) as h:
        assert h.link("vzhost2") is not None
    assert lab.vsh(a, "cat /sys/class/net/eth2/address")[1].strip() == "02:00:5e:00:53:01"

    lab.stop(a)
    lab.runtime.start(a)
    _, out = lab.vsh(a, "cat /sys/class/net/eth1/address")
    assert out.strip() == mac  # the same after a restart
    assert lab.network.registry.get(a).interfaces["eth1"] == host_if

    lab.network.netif_del(a, "eth1")
    code, _ = lab.vsh(a, "test -e /sys/class/net/eth1")
    assert code != 0
    with IP(lab.host) as h:
        assert h.link(host_if) is None and h.link("vzhost2") is not None
    lab.network.netif_del(a, "all")
    with IP(lab.host) as h:
        assert h.link("vzhost2") is None
    assert "eth" not in lab.vsh(a, "ls /sys/class/net")[1]
