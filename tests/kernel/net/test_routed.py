"""Routed (venet-like) VPS networking with real busybox VPSs in a test-made node network."""

from __future__ import annotations

import os

import pytest

from kernel.net.config import VpsNet
from kernel.net.ip import IP
from tests.kernel.net.conftest import HOST_ADDR6, PEER_ADDR4, PEER_ADDR6, Lab, in_ns, vps_addrs

pytestmark = pytest.mark.kernel


def test_two_vpss_reach_each_other_and_the_test_host(lab: Lab) -> None:
    a4, a6 = vps_addrs(0)
    b4, b6 = vps_addrs(1)
    a = lab.vps(VpsNet(ips=(a4, a6)))
    b = lab.vps(VpsNet(ips=(b4, b6)))
    for target in (b4, b6, PEER_ADDR4, PEER_ADDR6):
        assert lab.ping(a, target), target
    for target in (a4, a6, PEER_ADDR4, PEER_ADDR6):
        assert lab.ping(b, target), target
    for target in (a4, a6, b4, b6):
        assert in_ns(lab.peer, "busybox", "ping", "-c", "1", "-W", "2", target, check=False).returncode == 0, target
    _, out = lab.vsh(a, "ip -o addr show dev venet0; ip route; ip -6 route")
    assert a4 in out and a6 in out and "default via 169.254.0.1" in out and "default via fe80::1" in out
    # The host veths ignore router advertisements (set in the node's namespace, whose default is to accept them).
    veths = [name for ctid in (a, b) for name in lab.network.registry.get(ctid).interfaces.values()]
    ra = {name: in_ns(lab.host, "sysctl", "-n", f"net.ipv6.conf.{name}.accept_ra").stdout.strip() for name in veths}
    assert ra == dict.fromkeys(veths, "0")
    assert in_ns(lab.host, "sysctl", "-n", "net.ipv6.conf.default.accept_ra").stdout.strip() == "1"


def test_routed_ipv6_64_whole_prefix_and_nothing_else(lab: Lab) -> None:
    """A routed /64: the node routes all of it to the VPS, which picks its own addresses in it;
    a source outside it, even the next address down, is dropped by the ip6 source rule."""
    prefix = "2001:db8:5::/64"
    a4, _ = vps_addrs(0)
    a = lab.vps(VpsNet(ips=(a4, prefix)))
    in_ns(lab.peer, "ip", "-6", "route", "add", prefix, "via", HOST_ADDR6)  # the provider routes it to the node
    inside = ("2001:db8:5::1", "2001:db8:5::beef", "2001:db8:5:0:ffff:ffff:ffff:ffff")
    outside = ("2001:db8:4:ffff:ffff:ffff:ffff:ffff", "2001:db8:5:1::1")
    lab.vsh(a, "sysctl -qw net.ipv6.conf.venet0.accept_dad=0; "
            + "; ".join(f"ip -6 addr add {addr}/128 dev venet0" for addr in (*inside, *outside)))  # fmt: skip
    for addr in inside:
        code, out = lab.vsh(a, f"ping -c 1 -W 2 -I {addr} {PEER_ADDR6}")
        assert code == 0, (addr, out)
        assert in_ns(lab.peer, "busybox", "ping", "-c", "1", "-W", "2", addr, check=False).returncode == 0, addr
    for addr in outside:
        before = lab.counters(a)["venet0_bad_ip6"]
        code, _ = lab.vsh(a, f"ping -c 1 -W 2 -I {addr} {PEER_ADDR6}")
        assert code != 0, addr
        assert lab.counters(a)["venet0_bad_ip6"] > before, addr
    lab.network.del_ip(a, prefix)
    assert lab.vsh(a, f"ping -c 1 -W 2 -I {inside[0]} {PEER_ADDR6}")[0] != 0
    assert lab.ping(a, PEER_ADDR4)


def test_a_live_file_left_empty_is_no_live_state_and_release_still_removes_everything(lab: Lab) -> None:
    """The live file is written without fsync: a host crash may leave it empty (the truncate stands in)."""
    a4, a6 = vps_addrs(0)
    a = lab.vps(VpsNet(ips=(a4, a6)))
    names = set(lab.network.registry.get(a).interfaces.values())
    os.truncate(lab.network._live_path(a), 0)
    assert not lab.network.is_live(a)
    lab.stop(a)
    with IP(lab.host) as host:
        assert not names & {link.name for link in host.links()}
    assert ("netdev", f"{lab.network.prefix}_{a}") not in lab.network.nft.tables()
    assert not os.path.exists(lab.network._live_path(a))


def test_a_start_over_a_crashed_starts_leftovers_builds_each_rule_once(lab: Lab) -> None:
    """A start only creates the VPS's netdev table (no delete first): the live file a crashed start left
    makes it release everything first, so the table is absent and holds each rule once afterwards."""
    a4, a6 = vps_addrs(0)
    a = lab.vps(VpsNet(ips=(a4, a6)))
    table = f"{lab.network.prefix}_{a}"

    def rules() -> list[dict]:
        return [item["rule"] for item in lab.network.nft.list("table", "netdev", table) if "rule" in item]

    before = rules()
    assert before and os.path.exists(lab.network._live_path(a))
    pid = lab.runtime.status(a).init_pid
    assert pid
    lab.network.start(lab.network.registry.get(a), pid)  # as a start whose earlier run died after building
    after = rules()
    assert len(after) == len(before)
    assert sorted(repr(r["expr"]) for r in after) == sorted(repr(r["expr"]) for r in before)
    assert lab.ping(a, PEER_ADDR4)
