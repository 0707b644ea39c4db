"""Routed (venet-like) VPS networking with real busybox VPSs in a test-made node network."""

from __future__ import annotations

import pytest

from kernel.net.config import VpsNet
from tests.kernel.net.conftest import PEER_ADDR4, PEER_ADDR6, Lab, in_ns, vps_addrs

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
