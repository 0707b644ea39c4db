"""The netlink reader of tables and named counters agrees with nft(8), in a namespace of its own."""

from __future__ import annotations

import os

import pytest

from kernel.errors import NotFound
from kernel.net import nfobjects
from kernel.net.nft import Counter, Nft

pytestmark = pytest.mark.kernel

RULESET = """
table netdev ctpt_nfo_1 {
    counter v1_in { packets 5 bytes 300 }
    counter v1_out { packets 7 bytes 9000000000 }
    quota q1 { over 1 mbytes }
}
table inet ctpt_nfo_2 {
    counter host { packets 1 bytes 64 }
}
table ip ctpt_nfo_3 {
}
"""


def test_tables_and_counters_match_nft(netns):
    nft = Nft(netns)
    nft.batch(RULESET)
    tables, counters = nfobjects.read(netns)
    assert tables == {(t["table"]["family"], t["table"]["name"]): t["table"]["handle"] for t in nft.list("tables")}
    assert counters == nft.all_counters()
    assert counters[("netdev", "ctpt_nfo_1")] == {"v1_in": Counter(5, 300), "v1_out": Counter(7, 9_000_000_000)}
    assert ("ip", "ctpt_nfo_3") in tables and ("ip", "ctpt_nfo_3") not in counters  # no counters, no entry


def test_a_rebuilt_table_gets_a_new_handle(netns):
    nft = Nft(netns)
    nft.batch(RULESET)
    before, _ = nfobjects.read(netns)
    nft.batch("delete table netdev ctpt_nfo_1\n" + RULESET.split("table inet")[0])
    after, counters = nfobjects.read(netns)
    assert after[("netdev", "ctpt_nfo_1")] != before[("netdev", "ctpt_nfo_1")]
    assert counters[("netdev", "ctpt_nfo_1")]["v1_in"] == Counter(5, 300)


def test_the_callers_own_namespace_is_kept_and_a_missing_one_is_refused(netns):
    own = os.stat("/proc/thread-self/ns/net").st_ino
    nfobjects.read(netns)
    assert os.stat("/proc/thread-self/ns/net").st_ino == own
    with pytest.raises(NotFound):
        nfobjects.read("ctpnfo-no-such-namespace")
