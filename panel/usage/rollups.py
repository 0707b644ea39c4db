"""Rollups and expiry (Proxmox's horizons): raw 48 h, 5-minute rollups 14 days, hourly 13 months.

Rollups are recomputed for every complete bucket in a look-back window
(INSERT ... SELECT ... ON CONFLICT DO UPDATE), so a run is idempotent and a
batch that arrives a little late still lands in its bucket.
"""

from __future__ import annotations

import datetime

from django.db import connection
from django.utils import timezone

from panel.usage.models import FailEvent, Rollup, Sample, TrafficPeriod

RAW_KEEP = datetime.timedelta(hours=48)
FIVE_MINUTE_KEEP = datetime.timedelta(days=14)
HOURLY_KEEP = datetime.timedelta(days=395)
FAIL_EVENT_KEEP = HOURLY_KEEP
TRAFFIC_KEEP = HOURLY_KEEP
LOOKBACK = {Rollup.FIVE_MINUTES: datetime.timedelta(hours=1), Rollup.HOUR: datetime.timedelta(hours=3)}
_ORIGIN = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)

_COLUMNS = ("vps_id, period, start, samples, cpu_percent_avg, cpu_percent_max, ram_avg, ram_max, swap_max, disk_max, "
            "inodes_max, processes_max, rx_bps_avg, rx_bps_max, tx_bps_avg, tx_bps_max, rx_bytes, tx_bytes")
_UPDATE = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS.split(", ")[3:])

_FROM_SAMPLES = f"""
INSERT INTO usage_rollup ({_COLUMNS})
SELECT vps_id, %(period)s, date_bin(%(step)s, time, %(origin)s) AS bucket, count(*),
       avg(cpu_percent), max(cpu_percent), avg(ram_bytes)::bigint, max(ram_bytes), max(swap_bytes), max(disk_bytes),
       max(disk_inodes), max(processes), avg(rx_bps), max(rx_bps), avg(tx_bps), max(tx_bps),
       sum(rx_bytes), sum(tx_bytes)
FROM usage_sample WHERE time >= %(since)s AND time < %(until)s
GROUP BY vps_id, bucket
ON CONFLICT (vps_id, period, start) DO UPDATE SET {_UPDATE}
"""  # noqa: S608 (constant column names; values are parameters)

# Averages weighted by the sample counts of the finer buckets.
_FROM_ROLLUPS = f"""
INSERT INTO usage_rollup ({_COLUMNS})
SELECT vps_id, %(period)s, date_bin(%(step)s, start, %(origin)s) AS bucket, sum(samples),
       sum(cpu_percent_avg * samples) / nullif(sum(samples) FILTER (WHERE cpu_percent_avg IS NOT NULL), 0),
       max(cpu_percent_max),
       (sum(ram_avg * samples) / nullif(sum(samples) FILTER (WHERE ram_avg IS NOT NULL), 0))::bigint, max(ram_max),
       max(swap_max), max(disk_max), max(inodes_max), max(processes_max),
       sum(rx_bps_avg * samples) / nullif(sum(samples) FILTER (WHERE rx_bps_avg IS NOT NULL), 0), max(rx_bps_max),
       sum(tx_bps_avg * samples) / nullif(sum(samples) FILTER (WHERE tx_bps_avg IS NOT NULL), 0), max(tx_bps_max),
       sum(rx_bytes), sum(tx_bytes)
FROM usage_rollup WHERE period = %(source)s AND start >= %(since)s AND start < %(until)s
GROUP BY vps_id, bucket
ON CONFLICT (vps_id, period, start) DO UPDATE SET {_UPDATE}
"""  # noqa: S608 (constant column names; values are parameters)


def bucket_start(time: datetime.datetime, period: int) -> datetime.datetime:
    seconds = (time - _ORIGIN).total_seconds()
    return _ORIGIN + datetime.timedelta(seconds=int(seconds // period) * period)


def rollup(period: int, now: datetime.datetime | None = None,
           lookback: datetime.timedelta | None = None) -> int:
    """(Re)compute the complete `period` buckets of the look-back window; returns the rows written."""
    now = now or timezone.now()
    until = bucket_start(now, period)
    since = bucket_start(until - (lookback or LOOKBACK[period]), period)
    params = {"period": period, "step": datetime.timedelta(seconds=period), "origin": _ORIGIN, "since": since,
              "until": until, "source": Rollup.FIVE_MINUTES}
    with connection.cursor() as cursor:
        cursor.execute(_FROM_SAMPLES if period == Rollup.FIVE_MINUTES else _FROM_ROLLUPS, params)
        return cursor.rowcount


def expire(now: datetime.datetime | None = None) -> dict[str, int]:
    """Delete what is past its horizon; returns rows deleted per kind."""
    now = now or timezone.now()
    return {
        "samples": Sample.objects.filter(time__lt=now - RAW_KEEP).delete()[0],
        "rollups_5min": Rollup.objects.filter(period=Rollup.FIVE_MINUTES, start__lt=now - FIVE_MINUTE_KEEP).delete()[0],
        "rollups_hourly": Rollup.objects.filter(period=Rollup.HOUR, start__lt=now - HOURLY_KEEP).delete()[0],
        "fail_events": FailEvent.objects.filter(time__lt=now - FAIL_EVENT_KEEP).delete()[0],
        "traffic_periods": TrafficPeriod.objects.filter(end__lt=(now - TRAFFIC_KEEP).date()).delete()[0],
    }
