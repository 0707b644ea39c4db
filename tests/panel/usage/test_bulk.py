"""panel/core/bulk.py writes every column as a text array literal: awkward strings, JSON, NULLs and
numbers come back from PostgreSQL exactly as they went in."""

from __future__ import annotations

import pytest

from panel.core import bulk
from panel.usage.models import Beancounter, CounterState, FailEvent
from tests.panel.usage.world import T0, build

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

AWKWARD = ['a"b', "back\\slash", "com,ma", "{brace}", " spaced ", "", "NULL", "ünï", "\\\"", "tab\tnew\nline"]


def test_awkward_strings_json_and_nulls_round_trip():
    vpss = list(build().vpss.values())
    states = [(vps.pk, AWKWARD[i], T0, {"quote": AWKWARD[i], "big": 2**62, "nested": [None, 1.5]},
               {AWKWARD[-1 - i]: i}) for i, vps in enumerate(vpss)]
    bulk.insert_rows(CounterState, ("vps", "epoch", "time", "totals", "failcnt"), states)
    stored = {s.vps_id: (s.vps_id, s.epoch, s.time, s.totals, s.failcnt) for s in CounterState.objects.all()}
    assert [stored[row[0]] for row in states] == states

    rows = [(vpss[0].pk, name[:32], T0, i, 2 * i, 2**63 - 1, 0, i) for i, name in enumerate(AWKWARD)]
    bulk.insert_rows(Beancounter, ("vps", "resource", "updated", "held", "maxheld", "barrier", "limit", "failcnt"),
                     rows)
    assert sorted(Beancounter.objects.values_list("vps", "resource", "updated", "held", "maxheld", "barrier",
                                                  "limit", "failcnt")) == sorted(rows)

    fails = [(vpss[1].pk, T0, "oom_kill", 3, None, None), (vpss[1].pk, T0, "numproc", 1, 7, 10)]
    written = bulk.insert_rows(FailEvent, ("vps", "time", "resource", "count", "held", "limit"), fails,
                               returning=("resource", "held", "limit"))
    assert sorted(written) == [("numproc", 7, 10), ("oom_kill", None, None)]
