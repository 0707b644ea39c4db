"""Text views: OpenVZ's /proc/user_beancounters layout, vzubc and vzlist columns (pure)."""

from __future__ import annotations

import pytest

from kernel.ubc.accounting import lock_owners
from kernel.ubc.counters import UNLIMITED, Row
from kernel.ubc.views import user_beancounters, vzlist, vzubc

pytestmark = pytest.mark.unit
TABLE = {
    101: {
        "physpages": Row(40960, 81920, 512 << 20, 512 << 20, 3),
        "numproc": Row(12, 20, 200, 200, 0),
        "kmemsize": Row(2752512, 2899968, UNLIMITED, UNLIMITED, 0),
    }
}


def test_user_beancounters_exact_layout() -> None:
    text = user_beancounters(TABLE)
    lines = text.splitlines()
    assert lines[0] == "Version: 2.5"
    assert lines[1] == ("       uid  resource                     held              maxheld"
                        "              barrier                limit              failcnt")
    assert lines[2] == ("      101:  kmemsize                  2752512              2899968"
                        "  9223372036854775807  9223372036854775807                    0")
    # OpenVZ's order (numproc before physpages) and pages for physpages.
    assert lines[3].split() == ["numproc", "12", "20", "200", "200", "0"]
    assert lines[4].split() == ["physpages", "10", "20", "131072", "131072", "3"]
    assert lines[3].startswith(" " * 12 + "numproc")


def test_vzubc_and_vzlist() -> None:
    table = vzubc(TABLE)
    assert "CT 101" in table
    line = next(x for x in table.splitlines() if x.strip().startswith("physpages"))
    assert "40K" in line and "512M" in line and line.rstrip().endswith("3")
    columns = vzlist(TABLE, ["ctid", "physpages", "physpages.m", "physpages.l", "physpages.f", "numfile"])
    assert columns.splitlines()[1].split() == ["101", "10", "20", "131072", "3", "-"]
    with pytest.raises(ValueError):
        vzlist(TABLE, ["physpages.x"])


def test_accounting_parsers() -> None:
    locks = ("1: POSIX  ADVISORY  WRITE 4242 08:01:1234 0 EOF\n"
             "1: -> POSIX  ADVISORY  WRITE 4343 08:01:1234 0 EOF\n"
             "2: FLOCK  ADVISORY  WRITE 77 00:14:9 0 EOF\n")
    assert lock_owners(locks) == [4242, 77]
