"""Notices for a VPS outgrowing its plan: a beancounter row refused hour after hour.

`reports.rising` finds the rows (failcnt grew in at least 3 different hours of the
last 24); the customer gets one notice (and e-mail) per VPS and row a day, and the
webhooks `vps.failcnt_repeated`. Run from the hourly usage housekeeping.
"""

from __future__ import annotations

import datetime

from django.db import transaction
from django.utils import timezone

from panel.core.notify import services as notify
from panel.core.notify.choices import NoticeLevel
from panel.core.notify.models import Notice
from panel.usage.models import FailEvent
from panel.usage.reports import LIMIT_WORDS, rising
from panel.vps.models import VPS

EVENT = "vps.failcnt_repeated"
QUIET = datetime.timedelta(hours=24)  # one notice per VPS and row in this time


def notify_repeated_failcnt(now: datetime.datetime | None = None) -> int:
    """Tell the customers whose VPSs keep hitting a limit; the number of notices made."""
    now = now or timezone.now()
    made = 0
    rows = list(rising(FailEvent.objects.all(), now))
    vpss = VPS.objects.select_related("customer").in_bulk([row["vps"] for row in rows])
    for row in rows:
        vps = vpss[row["vps"]]
        what = LIMIT_WORDS.get(row["resource"], row["resource"])
        title = f"VPS {vps.hostname}: the {what} limit keeps being hit"
        with transaction.atomic():
            if Notice.objects.filter(recipient=vps.customer, event=EVENT, title=title,
                                     created__gte=now - QUIET).exists():
                continue
            notify.notify(vps.customer, EVENT, title,
                          f"Requests were refused in {row['hours']} different hours of the last day "
                          f"({row['count']} in all, the last at {row['last']:%Y-%m-%d %H:%M} UTC). "
                          "A larger plan gives the VPS more room.", level=NoticeLevel.WARNING)
            notify.emit(EVENT, {"ctid": vps.ctid, "hostname": vps.hostname, "customer": vps.customer.username,
                                "resource": row["resource"], "hours": row["hours"], "count": row["count"]},
                        tenant=vps.customer)
        made += 1
    return made
