"""A node's usage batch into the database: one transaction, bulk inserts, never a negative delta.

Totals are monotonic within an epoch. Against each VPS's `CounterState` the
ingest computes deltas and rates: same epoch, the difference (0 if a total
went backwards); a new epoch (or a VPS seen for the first time), the totals
themselves, counted afresh from the epoch's start, with no rate (its
duration is unknown). A sample not newer than the state (a redelivered
batch) is skipped, so ingesting a batch twice counts it once.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from panel.core import bulk
from panel.usage import traffic
from panel.usage.models import Beancounter, CounterState, FailEvent, Sample
from panel.vps.choices import VpsState
from panel.vps.models import VPS
from worker import protocol

log = logging.getLogger(__name__)

BEANCOUNTER_FIELDS = ("held", "maxheld", "barrier", "limit", "failcnt")
# A node clock ahead of the panel's by more than this is not believed.
MAX_CLOCK_SKEW = datetime.timedelta(minutes=5)


def batch_time(batch: protocol.UsageBatch) -> datetime.datetime:
    now = timezone.now()
    sent = datetime.datetime.fromtimestamp(batch.sent_at, tz=datetime.UTC)
    return min(sent, now + MAX_CLOCK_SKEW)


def _beancounters(raw: Any) -> dict[str, tuple[int, int, int, int, int]]:
    """The well-formed rows only, as (held, maxheld, barrier, limit, failcnt): a short name and
    non-negative integers (a missing field is 0)."""
    rows = {}
    for name, values in raw.items() if isinstance(raw, dict) else ():
        if not isinstance(name, str) or not 0 < len(name) <= 32 or not isinstance(values, dict):
            continue
        row = held, maxheld, barrier, limit, failcnt = (values.get("held", 0), values.get("maxheld", 0),
                                                        values.get("barrier", 0), values.get("limit", 0),
                                                        values.get("failcnt", 0))
        # Exact types (JSON's): a bool is no count.
        if type(held) is type(maxheld) is type(barrier) is type(limit) is type(failcnt) is int \
                and min(row) >= 0 and max(row) < 2**63:
            rows[name] = row
    return rows


def _delta(name: str, raw: dict[str, Any], previous: dict[str, int] | None) -> int | None:
    if name not in raw:
        return None
    if previous is None:
        return raw[name]  # a new epoch: counted afresh
    if name not in previous or raw[name] < previous[name]:
        return 0
    return raw[name] - previous[name]


#: The FailEvent row of each event counter (protocol.USAGE_EVENTS): what grew between two samples.
EVENT_RESOURCES = {"oom_kills": "oom_kill"}
assert set(EVENT_RESOURCES) == set(protocol.USAGE_EVENTS)

MEASURES = (*protocol.USAGE_COUNTERS, *protocol.USAGE_GAUGES)  # a sample's own values, stored as they came
TOTALS = (*protocol.USAGE_COUNTERS, *protocol.USAGE_EVENTS)  # what the next sample's deltas are taken from
RATE_COUNTERS = ("cpu_ns", "net_rx_bytes", "net_tx_bytes")  # the counters whose deltas make rates
SAMPLE_FIELDS = ("vps", "time", "epoch", "seconds", *MEASURES, "cpu_percent", "rx_bps", "tx_bps", "rx_bytes",
                 "tx_bytes")


def _rate(delta: int | None, seconds: float | None, scale: float) -> float | None:
    return delta * scale / seconds if seconds and seconds > 0 and delta is not None else None


def ingest(batch: protocol.UsageBatch) -> int:
    """Store `batch`; returns how many samples were new. Samples for VPSs not on the batch's node are ignored.

    Rows are written as tuples in one statement per table (panel/core/bulk.py): at 10,000 VPSs a
    minute, model instances would cost the panel worker more than the database's work."""
    time = batch_time(batch)
    # ctid -> (primary key, the plan's traffic reset day and quota), of all the node's VPSs: a
    # filter on the batch's ctids (hundreds) would cost more to build than the rows it saves.
    vpss = {ctid: (pk, day or 1, quota or 0) for ctid, pk, day, quota in VPS.objects
            .filter(node__name=batch.node).exclude(state=VpsState.DESTROYED)
            .values_list("ctid", "pk", "plan__traffic_reset_day", "plan__traffic")}
    strangers = {s["ctid"] for s in batch.samples} - vpss.keys()
    if strangers:
        log.warning("usage batch from %s names VPSs it does not hold: %s", batch.node, sorted(strangers))
    samples, fails, states, rows, used = [], [], [], [], {}
    with transaction.atomic():
        known = {vps_id: (epoch, at, totals, failcnt) for vps_id, epoch, at, totals, failcnt
                 in CounterState.objects.select_for_update(of=("self",)).filter(vps__node__name=batch.node)
                 .values_list("vps", "epoch", "time", "totals", "failcnt")}
        for raw in batch.samples:
            vps = vpss.get(raw["ctid"])
            if vps is None:
                continue
            vps_id, epoch = vps[0], raw["epoch"]
            state = known.get(vps_id)
            same_epoch = state is not None and state[0] == epoch
            if same_epoch and state[1] >= time:
                continue  # seen already (a redelivery) or older than what we have
            previous = state[2] if same_epoch else None
            seconds = (time - state[1]).total_seconds() if same_epoch else None
            cpu, rx, tx = (_delta(name, raw, previous) for name in RATE_COUNTERS)
            samples.append((vps_id, time, epoch, seconds, *map(raw.get, MEASURES), _rate(cpu, seconds, 100 / 1e9),
                            _rate(rx, seconds, 8), _rate(tx, seconds, 8), rx or 0, tx or 0))
            if rx or tx:
                used[vps_id] = (rx or 0, tx or 0, vps[1], vps[2])
            beans = _beancounters(raw.get("beancounters"))
            failcnt_before = state[3] if same_epoch else {}
            for name, row in beans.items():
                grown = row[4] - failcnt_before.get(name, 0)
                if grown > 0:
                    fails.append((vps_id, time, name, min(grown, 2**31 - 1), row[0], row[3]))
                rows.append((vps_id, name, time, *row))
            for name, resource in EVENT_RESOURCES.items():
                grown = _delta(name, raw, previous)
                if grown:
                    fails.append((vps_id, time, resource, min(grown, 2**31 - 1), None, None))
            states.append((vps_id, epoch, time, {n: raw[n] for n in TOTALS if n in raw},
                           {name: row[4] for name, row in beans.items()}))
        bulk.insert_rows(Sample, SAMPLE_FIELDS, samples, conflict=("vps", "time"))
        bulk.insert_rows(FailEvent, ("vps", "time", "resource", "count", "held", "limit"), fails)
        bulk.insert_rows(CounterState, ("vps", "epoch", "time", "totals", "failcnt"), states, conflict=("vps",),
                         update=("epoch", "time", "totals", "failcnt"))
        bulk.insert_rows(Beancounter, ("vps", "resource", "updated", *BEANCOUNTER_FIELDS), rows,
                         conflict=("vps", "resource"), update=(*BEANCOUNTER_FIELDS, "updated"))
        traffic.add(used, time)
    return len(samples)
