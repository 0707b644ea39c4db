"""Per-VPS conntrack cap, packet-rate limit and outbound SMTP policy of routed VPSs, by their counters."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from kernel.net.config import VpsNet, make_mac
from kernel.net.ip import IP
from tests.kernel.net.conftest import PEER_ADDR4, Lab, send_frames, vps_addrs

pytestmark = pytest.mark.kernel


def test_conntrack_cap_stops_the_next_connection(lab: Lab) -> None:
    a4, b4 = vps_addrs(0)[0], vps_addrs(1)[0]
    a = lab.vps(VpsNet(ips=(a4,), conntrack_max=1))
    b = lab.vps(VpsNet(ips=(b4,)))
    assert lab.ping(a, PEER_ADDR4)  # A's one tracked connection
    assert not lab.ping(a, b4)
    assert lab.counters(a)["ct"] >= 1
    assert lab.ping(b, PEER_ADDR4) and lab.ping(b, a4)  # B has no cap; replies to A are not new
    assert lab.counters(b)["ct"] == 0


def test_packet_rate_limit_drops_the_excess(lab: Lab) -> None:
    a4 = vps_addrs(0)[0]
    a = lab.vps(VpsNet(ips=(a4,), packet_rate=10))
    host = lab.network.registry.get(a).interfaces["venet0"]
    with IP(lab.host) as h:
        host_mac = h.link(host).mac  # type: ignore[union-attr]
    src, dst = ipaddress.IPv4Address(a4).packed, ipaddress.IPv4Address(PEER_ADDR4).packed
    udp = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0, src, dst) + struct.pack("!HHHH", 9, 9, 8, 0)
    frame = bytes.fromhex(host_mac.replace(":", "")) + bytes.fromhex(make_mac(a, "venet0").replace(":", ""))
    before = lab.counters(a)
    send_frames(lab, a, "venet0", [frame + b"\x08\x00" + udp] * 300)
    after = lab.counters(a)
    dropped = after["venet0_pps"] - before["venet0_pps"]
    passed = after["venet0_out"] - before["venet0_out"]
    # 10/s, burst 5. The VPS's own stack may send a packet of its own meanwhile (IPv6 router
    # solicitation, ARP), which the counters see too.
    assert 300 <= dropped + passed <= 303 and dropped >= 200, (dropped, passed)
    assert after["venet0_bad_ip4"] == before["venet0_bad_ip4"]  # they were well-formed: the rate rule hit


def test_smtp_blocked_per_vps(lab: Lab) -> None:
    a4, b4 = vps_addrs(0)[0], vps_addrs(1)[0]
    a = lab.vps(VpsNet(ips=(a4,), smtp="block"))
    b = lab.vps(VpsNet(ips=(b4,)))  # the node's default: allow
    for ctid in (a, b):
        lab.vsh(ctid, f"nc -w 1 {PEER_ADDR4} 25 </dev/null; nc -w 1 {PEER_ADDR4} 26 </dev/null")
    assert lab.counters(a)["smtp"] >= 1
    assert lab.counters(b)["smtp"] == 0
    lab.network.configure(a, VpsNet(ips=(a4,), smtp="allow"))  # live
    hits = lab.counters(a)["smtp"]
    lab.vsh(a, f"nc -w 1 {PEER_ADDR4} 25 </dev/null")
    assert lab.counters(a)["smtp"] == hits
