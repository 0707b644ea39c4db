"""A VPS's graphs over an hour, a day, a week, a month or a year (Proxmox's ranges), as columns for uPlot.

Each range reads the finest data kept that long: raw samples for the hour,
5-minute rollups for the day, hourly rollups for the week and the month,
hourly rollups summed up per day for the year. A gap longer than two steps
(the VPS was stopped, the node was silent) is a null point, so the line
breaks instead of drawing a slope across it.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.db.models import Avg, Max
from django.db.models.functions import TruncDay
from django.utils import timezone

from panel.usage.models import Rollup, Sample
from panel.vps.models import VPS

DAY = 86400
# range -> (window, step in seconds: the sampling interval for raw samples)
RANGES: dict[str, tuple[datetime.timedelta, int]] = {
    "hour": (datetime.timedelta(hours=1), 60),
    "day": (datetime.timedelta(days=1), Rollup.FIVE_MINUTES),
    "week": (datetime.timedelta(days=7), Rollup.HOUR),
    "month": (datetime.timedelta(days=30), Rollup.HOUR),
    "year": (datetime.timedelta(days=365), DAY),
}
SERIES = ("cpu", "cpu_max", "ram", "ram_max", "disk", "rx", "tx")


def _raw(vps: VPS, since: datetime.datetime) -> list[tuple]:
    return list(Sample.objects.filter(vps=vps, time__gte=since).order_by("time").values_list(
        "time", "cpu_percent", "cpu_percent", "ram_bytes", "ram_bytes", "disk_bytes", "rx_bps", "tx_bps"))


def _rollups(vps: VPS, period: int, since: datetime.datetime) -> list[tuple]:
    return list(Rollup.objects.filter(vps=vps, period=period, start__gte=since).order_by("start").values_list(
        "start", "cpu_percent_avg", "cpu_percent_max", "ram_avg", "ram_max", "disk_max", "rx_bps_avg", "tx_bps_avg"))


def _days(vps: VPS, since: datetime.datetime) -> list[tuple]:
    """Hourly rollups per day: averages of the hours' averages, maxima of their maxima."""
    rows = (Rollup.objects.filter(vps=vps, period=Rollup.HOUR, start__gte=since)
            .annotate(day=TruncDay("start", tzinfo=datetime.UTC)).values("day")
            .annotate(cpu=Avg("cpu_percent_avg"), cpu_max=Max("cpu_percent_max"), ram=Avg("ram_avg"),
                      ram_max=Max("ram_max"), disk=Max("disk_max"), rx=Avg("rx_bps_avg"), tx=Avg("tx_bps_avg"))
            .order_by("day"))
    return [(r["day"], r["cpu"], r["cpu_max"], r["ram"], r["ram_max"], r["disk"], r["rx"], r["tx"]) for r in rows]


def graph(vps: VPS, name: str, now: datetime.datetime | None = None) -> dict[str, Any]:
    """{"range", "step", "since", "until", "t": [unix seconds], <SERIES>: [value or null], "limits"}."""
    window, step = RANGES[name]
    until = now or timezone.now()
    since = until - window
    if name == "hour":
        rows = _raw(vps, since)
    elif name == "year":
        rows = _days(vps, since)
    else:
        rows = _rollups(vps, step, since)
    columns: dict[str, list] = {"t": [], **{s: [] for s in SERIES}}
    previous = None
    for time, *values in rows:
        t = int(time.timestamp())
        if previous is not None and t - previous > 2 * step:
            columns["t"].append(previous + step)
            for s in SERIES:
                columns[s].append(None)
        columns["t"].append(t)
        for s, value in zip(SERIES, values, strict=True):
            columns[s].append(None if value is None else round(float(value), 2))
        previous = t
    limits = vps.limits or {}
    return {"range": name, "step": step, "since": int(since.timestamp()), "until": int(until.timestamp()),
            **columns, "limits": {"ram": limits.get("ram") or None, "disk": limits.get("diskspace") or None}}
