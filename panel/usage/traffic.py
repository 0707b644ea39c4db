"""Monthly traffic per VPS from its plan's reset day, and what happens at 80 %, 100 % and over quota.

Traffic is both directions on the wire as the VPS sees it (received +
sent). A period runs from the plan's `traffic_reset_day` to the same day of
the next month; its quota is the plan's `traffic` when the period began
(0 = unlimited). At 80 % and at 100 % the customer gets a notice (once
each); over 100 % the plan's `over_quota_action` happens once per period:
`throttle` sets both network rates to the plan's `throttle_rate` (lifted
when the period ends, by the hourly housekeeping job), `suspend` suspends
the VPS (lifted by an admin or the reseller).
"""

from __future__ import annotations

import datetime
import logging

from django.utils import timezone

from panel.core import bulk
from panel.core.notify import services as notify
from panel.core.notify.choices import NoticeLevel
from panel.plans.choices import OverQuotaAction
from panel.usage.models import TrafficPeriod
from panel.vps import services as vps_services
from panel.vps.choices import VpsState
from panel.vps.models import VPS

log = logging.getLogger(__name__)

WARN_AT = 0.8
GB = 10**9


def period_bounds(reset_day: int, on: datetime.date) -> tuple[datetime.date, datetime.date]:
    """[start, end) of the period containing `on` for a plan resetting on `reset_day` (1-28)."""
    def shift(day: datetime.date, months: int) -> datetime.date:
        index = day.year * 12 + day.month - 1 + months
        return datetime.date(index // 12, index % 12 + 1, reset_day)

    start = on.replace(day=reset_day) if on.day >= reset_day else shift(on.replace(day=1), -1)
    return start, shift(start, 1)


def add(used: dict[int, tuple[int, int, int, int]], time: datetime.datetime) -> None:
    """Count traffic in each VPS's current period (one statement), then check quotas. `used` maps a
    VPS's primary key to (received bytes, sent bytes, its plan's reset day, its plan's quota)."""
    if not used:
        return
    bounds = {day: period_bounds(day, time.date()) for day in {v[2] for v in used.values()}}
    rows = [(vps_id, *bounds[day], rx, tx, quota, False, False, "") for vps_id, (rx, tx, day, quota) in used.items()]
    counted = bulk.insert_rows(
        TrafficPeriod, ("vps", "start", "end", "rx_bytes", "tx_bytes", "quota", "notified_80", "notified_100",
                        "over_action"),
        rows, conflict=("vps", "start"), add=("rx_bytes", "tx_bytes"),
        returning=("id", "rx_bytes", "tx_bytes", "quota"))
    # Only a period at WARN_AT of its quota or more has anything to check (check_quota).
    near = [pk for pk, rx, tx, quota in counted if quota > 0 and rx + tx >= WARN_AT * quota]
    for period in TrafficPeriod.objects.filter(id__in=near).select_related("vps__plan", "vps__customer"):
        check_quota(period)


def _claim(period: TrafficPeriod, flag: str, value: object, **also: object) -> bool:
    """Set `flag` if still unset (False or ""): True for the one caller that set it, so each step happens once."""
    unset = "" if isinstance(value, str) else False
    return bool(TrafficPeriod.objects.filter(pk=period.pk, **{flag: unset}).update(**{flag: value}, **also))


def check_quota(period: TrafficPeriod) -> None:
    vps, used, quota = period.vps, period.total, period.quota
    if quota <= 0:
        return
    share = f"{used / GB:.2f} GB of {quota / GB:.2f} GB"
    if used >= WARN_AT * quota and _claim(period, "notified_80", True):
        notify.notify(vps.customer, "usage.traffic_80", f"VPS {vps.hostname}: 80 % of its monthly traffic used",
                      f"{share} used in the period {period.start} to {period.end}.", level=NoticeLevel.WARNING)
    if used >= quota and _claim(period, "notified_100", True):
        action = vps.plan.over_quota_action if vps.plan is not None else OverQuotaAction.THROTTLE
        notify.notify(vps.customer, "usage.traffic_100", f"VPS {vps.hostname}: monthly traffic used up",
                      f"{share} used in the period {period.start} to {period.end}. Over the quota the VPS is "
                      f"{'throttled' if action == OverQuotaAction.THROTTLE else 'suspended'}.",
                      level=NoticeLevel.WARNING)
        notify.emit("vps.traffic_quota", {"ctid": vps.ctid, "used": used, "quota": quota,
                                          "period_start": str(period.start)}, tenant=vps.customer)
    if used > quota and vps.state != VpsState.DESTROYED:
        action = vps.plan.over_quota_action if vps.plan is not None else OverQuotaAction.THROTTLE
        if _claim(period, "over_action", action, over_action_at=timezone.now()):
            over_quota(vps, action)


def over_quota(vps: VPS, action: str) -> None:
    if action == OverQuotaAction.SUSPEND:
        vps_services.suspend(None, vps, "Monthly traffic quota used up")
    else:
        rate = vps.plan.throttle_rate if vps.plan is not None else 0
        vps_services.set_limits(None, vps, rate_in=rate, rate_out=rate)
    log.info("VPS %s over its traffic quota: %s", vps.ctid, action)


def lift_throttles(today: datetime.date | None = None) -> int:
    """Give throttled VPSs their plan's rates back once their period is over."""
    today = today or timezone.now().date()
    lifted = 0
    ended = TrafficPeriod.objects.filter(over_action=OverQuotaAction.THROTTLE, end__lte=today).select_related(
        "vps__plan")
    for period in ended.exclude(vps__state=VpsState.DESTROYED):
        vps = period.vps
        if vps.plan is not None and TrafficPeriod.objects.filter(pk=period.pk, over_action=period.over_action).update(
                over_action=f"{OverQuotaAction.THROTTLE}-lifted"):
            vps_services.set_limits(None, vps, rate_in=vps.plan.port_speed, rate_out=vps.plan.port_speed)
            lifted += 1
    return lifted
