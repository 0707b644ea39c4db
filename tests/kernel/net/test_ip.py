"""The rtnetlink facade's name lookups: one link asked for alone, indexes kept per socket but never stale."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from kernel.errors import NotFound
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
