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


def _beancounters(raw: Any) -> dict[str, dict[str, int]]:
    """The well-formed rows only: a short name and non-negative integers."""
    rows = {}
    for name, values in (raw or {}).items() if isinstance(raw, dict) else ():
        if not isinstance(name, str) or not 0 < len(name) <= 32 or not isinstance(values, dict):
            continue
        row = {f: values.get(f, 0) for f in BEANCOUNTER_FIELDS}
        if all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 for v in row.values()):
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


def ingest(batch: protocol.UsageBatch) -> int:
    """Store `batch`; returns how many samples were new. Samples for VPSs not on the batch's node are ignored."""
    time = batch_time(batch)
    ctids = [s["ctid"] for s in batch.samples]
    vpss = {v.ctid: v for v in VPS.objects.filter(ctid__in=ctids, node__name=batch.node)
            .exclude(state=VpsState.DESTROYED).select_related("plan", "customer")}
    if len(vpss) < len(set(ctids)):
        log.warning("usage batch from %s names VPSs it does not hold: %s", batch.node,
                    sorted(set(ctids) - set(vpss)))
    samples, fails, states, rows, used = [], [], [], [], {}
    with transaction.atomic():
        known = {s.vps_id: s for s in CounterState.objects.select_for_update().filter(
            vps__in=[v.pk for v in vpss.values()])}
        for raw in batch.samples:
            vps = vpss.get(raw["ctid"])
            if vps is None:
                continue
            state = known.get(vps.pk)
            same_epoch = state is not None and state.epoch == raw["epoch"]
            if same_epoch and state.time >= time:
                continue  # seen already (a redelivery) or older than what we have
            previous = state.totals if same_epoch else None
            seconds = (time - state.time).total_seconds() if same_epoch else None
            delta = {name: _delta(name, raw, previous) for name in protocol.USAGE_COUNTERS}
            rate = seconds if seconds and seconds > 0 else None
            sample = Sample(
                vps=vps, time=time, epoch=raw["epoch"], seconds=seconds,
                **{name: raw.get(name) for name in (*protocol.USAGE_COUNTERS, *protocol.USAGE_GAUGES)},
                cpu_percent=delta["cpu_ns"] / (rate * 1e9) * 100 if rate and delta["cpu_ns"] is not None else None,
                rx_bps=delta["net_rx_bytes"] * 8 / rate if rate and delta["net_rx_bytes"] is not None else None,
                tx_bps=delta["net_tx_bytes"] * 8 / rate if rate and delta["net_tx_bytes"] is not None else None,
                rx_bytes=delta["net_rx_bytes"] or 0, tx_bytes=delta["net_tx_bytes"] or 0,
            )
            samples.append(sample)
            if sample.rx_bytes or sample.tx_bytes:
                used[vps] = (sample.rx_bytes, sample.tx_bytes)
            beans = _beancounters(raw.get("beancounters"))
            failcnt_before = state.failcnt if same_epoch else {}
            for name, row in beans.items():
                grown = row["failcnt"] - failcnt_before.get(name, 0)
                if grown > 0:
                    fails.append(FailEvent(vps=vps, time=time, resource=name, count=min(grown, 2**31 - 1),
                                           held=row["held"], limit=row["limit"]))
                rows.append(Beancounter(vps=vps, resource=name, updated=time, **row))
            states.append(CounterState(
                vps=vps, epoch=raw["epoch"], time=time,
                totals={n: raw[n] for n in protocol.USAGE_COUNTERS if n in raw},
                failcnt={name: row["failcnt"] for name, row in beans.items()}))
        Sample.objects.bulk_create(samples, ignore_conflicts=True)
        FailEvent.objects.bulk_create(fails)
        CounterState.objects.bulk_create(states, update_conflicts=True, unique_fields=["vps"],
                                         update_fields=["epoch", "time", "totals", "failcnt"])
        Beancounter.objects.bulk_create(rows, update_conflicts=True, unique_fields=["vps", "resource"],
                                        update_fields=[*BEANCOUNTER_FIELDS, "updated"])
        traffic.add(used, time)
    return len(samples)
