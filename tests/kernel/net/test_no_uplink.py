"""A node whose configuration names no uplink (the quickstart's default) never forwards VPS traffic
off the node: the host namespace still has a "would-be uplink" (up0, with the test host behind it
and a route to it), and a VPS's packets towards the test host are dropped by the VPS's `offnode`
rule and never reach it, while VPSs still reach each other."""

from __future__ import annotations

import pytest

from kernel.net.config import VpsNet
from tests.kernel.net.conftest import PEER_ADDR4, PEER_ADDR6, Lab, in_ns, vps_addrs

pytestmark = pytest.mark.kernel

#: In the test host's own namespace: counts every packet from the VPS's addresses that arrives.
PEER_COUNTER = """
table inet seen {
    counter from_vps {}
    chain pre {
        type filter hook prerouting priority 0;
        ip saddr 203.0.113.10 counter name from_vps
        ip6 saddr 2001:db8:1::a counter name from_vps
    }
}
"""


def _arrived(lab: Lab) -> int:
    out = in_ns(lab.peer, "nft", "list", "counter", "inet", "seen", "from_vps").stdout
    return int(out.split("packets ")[1].split()[0])


@pytest.mark.parametrize("lab", [None], indirect=True)
def test_without_an_uplink_vps_traffic_never_leaves_the_node(lab: Lab, tmp_path) -> None:
    assert lab.network.net.uplink is None
    a4, a6 = vps_addrs(0)
    b4, b6 = vps_addrs(1)
    assert (a4, a6) == ("203.0.113.10", "2001:db8:1::a")  # what PEER_COUNTER matches
    a = lab.vps(VpsNet(ips=(a4, a6)))
    lab.vps(VpsNet(ips=(b4, b6)))
    (tmp_path / "seen.nft").write_text(PEER_COUNTER)
    in_ns(lab.peer, "nft", "-f", str(tmp_path / "seen.nft"))
    assert in_ns(lab.host, "ip", "route", "get", PEER_ADDR4).stdout.split()[2] == "up0"  # routable, not forwarded

    assert lab.ping(a, b4) and lab.ping(a, b6)  # VPS to VPS stays on the node
    before = lab.counters(a)["offnode"]
    assert not lab.ping(a, PEER_ADDR4, source=a4)
    assert not lab.ping(a, PEER_ADDR6, source=a6)
    code, _ = lab.vsh(a, f"echo hi | nc -w 1 {PEER_ADDR4} 80")
    assert code != 0
    assert lab.counters(a)["offnode"] >= before + 3  # the echo requests (ping -c 1 each) and the SYN
    assert _arrived(lab) == 0
