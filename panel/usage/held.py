"""What a budget's VPSs actually hold, beside what is allocated to them (docs/panel-domain.md, "Budgets").

The plans app sits below this one, so it cannot ask; this module hands it the
figures through `budgets.provide_used` when the app loads. Per budget
resource, over the grantee's VPSs that are not destroyed (a reseller's: all
its customers'):

- vps_count: the VPSs running now;
- ram, cpus: from each VPS's latest sample, if it is fresh (a stopped VPS or
  a silent node holds none): RAM in use, CPUs busy (cpu_percent / 100);
- disk: each VPS's latest disk reading, however old (a stopped VPS keeps its
  disk), from the raw samples or else the hourly rollups;
- ipv4, ipv6_prefixes: the addresses and /64s assigned to the VPSs;
- traffic: both directions in each VPS's current traffic period.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.db.models import OuterRef, Q, Subquery, Sum
from django.utils import timezone

from panel.nodes.models import IPAddress
from panel.usage.models import Rollup, Sample, TrafficPeriod
from panel.vps.choices import VpsState
from panel.vps.models import VPS

# A latest sample older than this says nothing about RAM and CPU now (nodes sample once a minute).
FRESH = datetime.timedelta(minutes=5)


def used(user: Any, now: datetime.datetime | None = None) -> dict[str, float]:
    """Per budget resource, what `user`'s VPSs hold now (a reseller's: its customers'). CPUs as a fraction."""
    now = now or timezone.now()
    vpss = VPS.objects.alive().filter(Q(customer__owner=user) if user.is_reseller else Q(customer=user))
    latest = Sample.objects.filter(vps=OuterRef("pk")).order_by("-time")
    with_disk = latest.filter(disk_bytes__isnull=False)
    rolled = Rollup.objects.filter(vps=OuterRef("pk"), period=Rollup.HOUR, disk_max__isnull=False).order_by("-start")
    rows = vpss.annotate(
        sample_time=Subquery(latest.values("time")[:1]), ram=Subquery(latest.values("ram_bytes")[:1]),
        cpu=Subquery(latest.values("cpu_percent")[:1]), disk=Subquery(with_disk.values("disk_bytes")[:1]),
        disk_rolled=Subquery(rolled.values("disk_max")[:1]),
    ).values_list("state", "ctid", "sample_time", "ram", "cpu", "disk", "disk_rolled")
    totals = {"vps_count": 0, "ram": 0, "disk": 0, "cpus": 0.0, "ipv4": 0, "ipv6_prefixes": 0, "traffic": 0}
    holders = []
    for state, ctid, sample_time, ram, cpu, disk, disk_rolled in rows:
        holders.append(f"vps:{ctid}")
        totals["vps_count"] += state == VpsState.RUNNING
        if sample_time is not None and sample_time >= now - FRESH:
            totals["ram"] += ram or 0
            totals["cpus"] += (cpu or 0) / 100
        totals["disk"] += disk if disk is not None else disk_rolled or 0
    totals["cpus"] = round(totals["cpus"], 2)
    addresses = IPAddress.objects.filter(assigned_to__in=holders)
    totals["ipv4"] = addresses.filter(prefix_length=32).count()
    totals["ipv6_prefixes"] = addresses.filter(prefix_length=64).count()
    today = timezone.localdate(now)
    period = TrafficPeriod.objects.filter(vps__in=vpss, start__lte=today, end__gt=today)
    sums = period.aggregate(rx=Sum("rx_bytes"), tx=Sum("tx_bytes"))
    totals["traffic"] = (sums["rx"] or 0) + (sums["tx"] or 0)
    return totals
