"""The rtnetlink facade's name lookups: one link asked for alone, indexes kept per socket but never stale."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator

import pytest

from kernel.errors import InvalidArgument, KernelError, NotFound
from kernel.net.ip import IP

pytestmark = pytest.mark.kernel


@pytest.fixture
def other_netns() -> Iterator[str]:
    name = f"ctpns{os.getpid()}b"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_a_link_is_found_alone_and_a_missing_one_is_none(netns):
    with IP(netns) as ip:
        ip.veth_add("ctpta0", "ctptb0")
        assert ip.link("ctpta0") == next(link for link in ip.links() if link.name == "ctpta0")
        assert ip.link("ctpta0").kind == "veth"
        assert ip.link("ctptnone0") is None


def test_an_index_follows_deletes_renames_and_moves_of_this_socket(netns, other_netns):
    with IP(netns) as ip:
        first = ip.veth_add("ctpta0", "ctptb0")
        assert ip.index("ctpta0") == first
        ip.link_del("ctpta0")
        with pytest.raises(NotFound):
            ip.index("ctpta0")
        second = ip.veth_add("ctpta0", "ctptb0")
        assert second != first and ip.index("ctpta0") == second
        ip.link_set("ctpta0", rename="ctptc0")
        assert ip.index("ctptc0") == second
        with pytest.raises(NotFound):
            ip.index("ctpta0")
        ip.veth_add("ctpta0", "ctptb1")
        assert ip.index("ctpta0") not in (first, second)
        ip.index("ctptb1")
        ip.link_set("ctptb1", netns=other_netns)
        with pytest.raises(NotFound):
            ip.index("ctptb1")
        with IP(other_netns) as other:
            assert other.index("ctptb1") == other.link("ctptb1").index


def test_the_start_requests_are_ensures_and_their_refusals_typed(netns):
    """What a VPS start asks (kernel/net/rtnl.py): each again is no change and no error; a veth
    name held by another kind of link, a missing link and a refused route raise typed errors."""
    with IP(netns) as ip:
        index = ip.veth_add("ctpta0", "ctptb0", mac="02:00:00:00:00:01", peer_mac="02:00:00:00:00:02")
        for _ in range(2):
            assert ip.veth_add("ctpta0", "ctptb0") == index
            ip.link_set("ctpta0", alias="ctpanel:n:1:eth0", up=True)
            ip.addr_add("ctpta0", "198.51.100.1/32")
            ip.addr_add("ctpta0", "2001:db8::1/64", nodad=True)
            ip.route_add("203.0.113.7/32", dev="ctpta0")
            ip.route_add("default", via="203.0.113.1", dev="ctpta0", onlink=True)
            ip.neigh_add("198.51.100.1", "02:00:00:00:00:09", dev="ctpta0")
            ip.neigh_add_proxy("203.0.113.7", dev="ctpta0")
        link = ip.link("ctpta0")
        assert (link.mac, link.alias, link.up) == ("02:00:00:00:00:01", "ctpanel:n:1:eth0", True)
        assert ip.link("ctptb0").mac == "02:00:00:00:00:02"
        assert sorted(ip.addrs("ctpta0"))[:2] == ["198.51.100.1/32", "2001:db8::1/64"]
        assert {"203.0.113.7/32", "default"} <= set(ip.routes("ctpta0"))
        assert ip.neigh("198.51.100.1", dev="ctpta0") == "02:00:00:00:00:09"
        ip.bridge_add("ctptbr0")
        with pytest.raises(KernelError) as refused:
            ip.veth_add("ctptbr0", "ctptb1")
        assert refused.value.errno == errno.EEXIST
        with pytest.raises(NotFound):
            ip.link_set("ctptnone0", up=True)
        with pytest.raises(InvalidArgument):  # the kernel's EINVAL: a gateway that is a local address
            ip.route_add("default", via="2001:db8::1", dev="ctpta0")
