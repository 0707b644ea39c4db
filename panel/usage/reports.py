"""What the UI and the API show: a VPS's series, its failcnt events, and usage per customer or reseller.

Everything goes through `restrict`, so a report holds only what its reader may see.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Avg, Count, Max, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from panel.core.formats import bytes_si
from panel.core.permissions import VIEW, is_admin
from panel.usage.models import FailEvent, Rollup, Sample, TrafficPeriod
from panel.vps.models import VPS

HOURLY_FROM = datetime.timedelta(days=2)
RESOLUTIONS = {"raw": 0, "5min": Rollup.FIVE_MINUTES, "hour": Rollup.HOUR}
SAMPLE_FIELDS = ("time", "cpu_percent", "ram_bytes", "swap_bytes", "disk_bytes", "disk_inodes", "processes",
                 "rx_bps", "tx_bps", "rx_bytes", "tx_bytes")
ROLLUP_FIELDS = ("start", "samples", "cpu_percent_avg", "cpu_percent_max", "ram_avg", "ram_max", "swap_max",
                 "disk_max", "inodes_max", "processes_max", "rx_bps_avg", "rx_bps_max", "tx_bps_avg", "tx_bps_max",
                 "rx_bytes", "tx_bytes")


def series(vps: VPS, resolution: str, since: datetime.datetime, until: datetime.datetime) -> list[dict[str, Any]]:
    """Points of one VPS between `since` and `until`: raw samples, or 5-minute or hourly rollups."""
    period = RESOLUTIONS[resolution]
    if period == 0:
        return list(Sample.objects.filter(vps=vps, time__gte=since, time__lt=until).order_by("time")
                    .values(*SAMPLE_FIELDS))
    return list(Rollup.objects.filter(vps=vps, period=period, start__gte=since, start__lt=until).order_by("start")
                .values(*ROLLUP_FIELDS))


def fail_summary(vps: VPS, since: datetime.datetime, until: datetime.datetime) -> list[dict[str, Any]]:
    """Per beancounter row: how often its limit was hit in the window, e.g. "physpages 12 times"."""
    return list(FailEvent.objects.filter(vps=vps, time__gte=since, time__lt=until).values("resource")
                .annotate(count=Sum("count"), last_time=Max("time")).order_by("resource")
                .values("resource", "count", "last_time"))


def usage_report(actor: Any, since: datetime.datetime, until: datetime.datetime,
                 group: str = "customer") -> list[dict[str, Any]]:
    """Traffic, CPU and RAM per customer (or per reseller) of the VPSs `actor` may see, from rollups.

    `group` "reseller" is for admins: the customers of each reseller summed
    (the admin's own customers under `null`).
    """
    if group not in ("customer", "reseller"):
        raise ValueError(group)
    key = "vps__customer" if group == "customer" or not is_admin(actor) else "vps__customer__owner"
    visible = VPS.objects.restrict(actor, VIEW).values("pk")
    # 5-minute rollups are kept 14 days: windows longer than two days read the hourly ones (complete hours).
    period = Rollup.FIVE_MINUTES if until - since <= HOURLY_FROM else Rollup.HOUR
    rows = (Rollup.objects.filter(vps__in=visible, period=period, start__gte=since, start__lt=until)
            .values(key).annotate(vpss=Count("vps", distinct=True), rx_bytes=Sum("rx_bytes"), tx_bytes=Sum("tx_bytes"),
                                  cpu_percent_avg=Avg("cpu_percent_avg"), ram_avg=Avg("ram_avg"),
                                  ram_max=Max("ram_max")).order_by(key))
    fails = dict(FailEvent.objects.filter(vps__in=visible, time__gte=since, time__lt=until).values(key)
                 .annotate(n=Sum("count")).values_list(key, "n"))
    names = dict(get_user_model().objects.filter(pk__in=[r[key] for r in rows if r[key]])
                 .values_list("pk", "username"))
    return [{"user": row[key], "username": names.get(row[key], ""), "vpss": row["vpss"],
             "rx_bytes": row["rx_bytes"] or 0, "tx_bytes": row["tx_bytes"] or 0,
             "cpu_percent_avg": row["cpu_percent_avg"], "ram_avg": int(row["ram_avg"] or 0),
             "ram_max": row["ram_max"] or 0, "fail_events": fails.get(row[key], 0)} for row in rows]


def traffic_periods(actor: Any, on: datetime.date) -> Any:
    """The traffic periods running on `on` of the VPSs `actor` may see."""
    return TrafficPeriod.objects.restrict(actor, VIEW).filter(Q(start__lte=on) & Q(end__gt=on))


def rising_failcnt(actor: Any, now: datetime.datetime | None = None, hours: int = 24,
                   min_hours: int = 3) -> list[dict[str, Any]]:
    """VPS beancounter rows whose failcnt grew in at least `min_hours` different hours of the last `hours`.

    One burst (a fork bomb, a big build) is one hour; a row that keeps being
    refused hour after hour is a VPS outgrowing its plan: an alert.
    """
    return list(rising(FailEvent.objects.restrict(actor, VIEW), now, hours, min_hours)
                .values("vps__ctid", "vps__hostname", "vps__customer__username", "resource", "hours", "count",
                        "last"))


def rising(events: Any, now: datetime.datetime | None = None, hours: int = 24, min_hours: int = 3) -> Any:
    """`rising_failcnt`'s rows of the FailEvent queryset `events`, grouped by VPS and row (with `vps` its id)."""
    since = (now or timezone.now()) - datetime.timedelta(hours=hours)
    return (events.filter(time__gte=since).values("vps", "resource")
            .annotate(hours=Count(TruncHour("time"), distinct=True), count=Sum("count"), last=Max("time"))
            .filter(hours__gte=min_hours).order_by("-hours", "-count", "vps__ctid"))


# What each beancounter row limits, for people who do not speak vzubc.
LIMIT_WORDS = {
    "numproc": "processes and threads", "physpages": "RAM", "swappages": "swap", "kmemsize": "kernel memory",
    "shmpages": "shared memory", "tcpsndbuf": "TCP send buffers", "numfile": "open files",
    "oom_kill": "RAM (processes killed)",
}


def fail_words(event: FailEvent) -> str:
    """One limit hit in plain words: "Processes and threads reached the limit (64 of 64): 3 refused."."""
    if event.resource == "oom_kill":
        return f"Out of memory: {event.count} process{'es' if event.count != 1 else ''} killed inside the VPS."
    what = LIMIT_WORDS.get(event.resource, event.resource)
    if event.limit:
        def shown(value: int) -> str:
            return str(value) if event.resource.startswith("num") else bytes_si(value)
        what += f" reached the limit ({shown(event.held or 0)} of {shown(event.limit)})"
    else:
        what += " reached the limit"
    return f"{what[:1].upper()}{what[1:]}: {event.count} request{'s' if event.count != 1 else ''} refused."
