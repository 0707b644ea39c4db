"""Usage batches through the panel task: deltas and rates, epochs, failcnt events, rollups, expiry, traffic quotas."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from panel.core.models import Operation
from panel.core.notify.models import Notice
from panel.plans.choices import OverQuotaAction
from panel.usage import reports, rollups, traffic
from panel.usage.models import Beancounter, FailEvent, Rollup, Sample, TrafficPeriod
from panel.usage.tasks import usage_batch
from panel.vps.models import VPS
from tests.panel.usage.world import GIB, T0, batch, build, physpages, sample

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
MIN = datetime.timedelta(minutes=1)


@pytest.fixture
def w():
    return build()


def test_rates_come_from_totals_within_an_epoch_and_never_go_negative(w):
    vps = w.vpss["customer1"]
    assert usage_batch(batch("n1", T0, sample(vps, cpu_s=100, rx=10**6, tx=2 * 10**6, ram=GIB // 2))) == 1
    usage_batch(batch("n1", T0 + MIN, sample(vps, cpu_s=130, rx=10**6 + 60 * 1000, tx=2 * 10**6, ram=GIB // 4)))
    usage_batch(batch("n1", T0 + 2 * MIN, sample(vps, "e2", cpu_s=1, rx=500, tx=700)))  # the node lost its totals
    usage_batch(batch("n1", T0 + 3 * MIN, sample(vps, "e2", cpu_s=7, rx=400, tx=900)))  # rx went backwards
    rows = list(Sample.objects.filter(vps=vps).order_by("time"))
    assert [r.cpu_percent for r in rows] == [None, pytest.approx(50.0), None, pytest.approx(10.0)]
    assert [r.rx_bps for r in rows] == [None, pytest.approx(8000.0), None, 0.0]
    assert [(r.rx_bytes, r.tx_bytes) for r in rows] == [(10**6, 2 * 10**6), (60000, 0), (500, 700), (0, 200)]
    assert all(r.rx_bytes >= 0 and r.tx_bytes >= 0 for r in rows)
    assert rows[1].ram_bytes == GIB // 4


def test_a_redelivered_batch_counts_once_and_other_nodes_vpss_are_ignored(w):
    vps = w.vpss["customer1"]
    body = batch("n1", T0, sample(vps, rx=5000))
    assert usage_batch(body) == 1
    assert usage_batch(body) == 0
    assert usage_batch(batch("intruder", T0 + MIN, sample(vps, rx=10**12))) == 0
    assert TrafficPeriod.objects.get(vps=vps).rx_bytes == 5000
    assert usage_batch({"schema": "1.0", "node": "n1", "sent_at": 1.0, "interval": 60,
                        "samples": [{"ctid": vps.ctid, "epoch": "e1", "cpu_ns": -1}]}) == 0


def test_failcnt_growth_becomes_events_with_time_and_row(w):
    vps = w.vpss["customer2"]
    for minute, failcnt in enumerate((0, 0, 5, 12, 12, 3)):
        epoch = "e1" if minute < 5 else "e2"
        usage_batch(batch("n1", T0 + minute * MIN, sample(vps, epoch, beancounters={
            **physpages(failcnt), "numproc": {"held": 10, "maxheld": 12, "barrier": 100, "limit": 100, "failcnt": 0},
            "bad row": "not a row"})))
    events = list(FailEvent.objects.filter(vps=vps).order_by("time").values_list("resource", "count", "time"))
    assert events == [("physpages", 5, T0 + 2 * MIN), ("physpages", 7, T0 + 3 * MIN), ("physpages", 3, T0 + 5 * MIN)]
    table = {b.resource: b.failcnt for b in Beancounter.objects.filter(vps=vps)}
    assert table == {"physpages": 3, "numproc": 0}
    summary = reports.fail_summary(vps, T0 + 2 * MIN, T0 + 4 * MIN)
    assert [(s["resource"], s["count"]) for s in summary] == [("physpages", 12)]  # "RAM limit hit 12 times"


def test_oom_kills_become_events_in_words_and_redeliveries_count_once(w):
    """"RAM limit hit 12 times between 03:00 and 03:10; 2 processes killed": the node's running total
    of OOM kills (protocol 1.5 `oom_kills`) becomes events of what grew, as failcnt does."""
    vps = w.vpss["customer2"]
    for minute, kills in enumerate((0, 0, 2, 2, 3)):
        usage_batch(batch("n1", T0 + minute * MIN, {**sample(vps, beancounters=physpages(4 * minute)),
                                                     "oom_kills": kills}))
    usage_batch(batch("n1", T0 + 2 * MIN, {**sample(vps, beancounters=physpages(8)), "oom_kills": 2}))  # again
    events = list(FailEvent.objects.filter(vps=vps, resource="oom_kill").order_by("time"))
    assert [(e.count, e.time) for e in events] == [(2, T0 + 2 * MIN), (1, T0 + 4 * MIN)]
    assert [reports.fail_words(e) for e in events] == ["Out of memory: 2 processes killed inside the VPS.",
                                                       "Out of memory: 1 process killed inside the VPS."]
    summary = {s["resource"]: s["count"] for s in reports.fail_summary(vps, T0, T0 + 10 * MIN)}
    assert summary == {"physpages": 16, "oom_kill": 3}


def test_rollups_five_minutes_and_hourly_then_expiry(w):
    vps = w.vpss["customer1"]
    for minute in range(0, 61):
        usage_batch(batch("n1", T0 + minute * MIN, sample(vps, cpu_s=minute * 30, rx=minute * 60000,
                                                           ram=GIB if minute < 30 else GIB // 2)))
    assert rollups.rollup(Rollup.FIVE_MINUTES, now=T0 + 65 * MIN, lookback=datetime.timedelta(hours=2)) == 13
    first, second = Rollup.objects.filter(vps=vps, period=300).order_by("start")[:2]
    assert (first.start, first.samples, first.rx_bytes) == (T0, 5, 4 * 60000)  # the first sample has no delta
    assert second.cpu_percent_avg == pytest.approx(50.0) and second.rx_bps_max == pytest.approx(8000.0)
    assert rollups.rollup(Rollup.HOUR, now=T0 + 65 * MIN) == 1
    hour = Rollup.objects.get(vps=vps, period=3600)
    assert hour.samples == 60 and hour.rx_bytes == 59 * 60000 and hour.ram_max == GIB
    assert hour.ram_avg == (30 * GIB + 30 * (GIB // 2)) // 60
    assert rollups.rollup(Rollup.FIVE_MINUTES, now=T0 + 65 * MIN, lookback=datetime.timedelta(hours=2)) == 13
    assert Rollup.objects.filter(period=300).count() == 12 + 1  # recomputed, not duplicated
    gone = rollups.expire(now=T0 + datetime.timedelta(hours=48, minutes=30))
    assert gone["samples"] == 30 and gone["rollups_5min"] == 0
    assert rollups.expire(now=T0 + datetime.timedelta(days=15))["rollups_5min"] == 13
    assert Rollup.objects.filter(period=3600).count() == 1


def test_traffic_periods_follow_the_plans_reset_day():
    assert traffic.period_bounds(15, datetime.date(2026, 11, 27)) == (datetime.date(2026, 11, 15),
                                                                      datetime.date(2026, 12, 15))
    assert traffic.period_bounds(15, datetime.date(2026, 1, 3)) == (datetime.date(2025, 12, 15),
                                                                    datetime.date(2026, 1, 15))
    assert traffic.period_bounds(1, datetime.date(2026, 12, 31)) == (datetime.date(2026, 12, 1),
                                                                     datetime.date(2027, 1, 1))


@pytest.mark.parametrize("action", [OverQuotaAction.THROTTLE, OverQuotaAction.SUSPEND])
def test_quota_notices_at_80_and_100_percent_and_the_over_quota_action_once(action):
    w = build(traffic=10**9, traffic_reset_day=20, over_quota_action=action, throttle_rate=10**6,
              port_speed=10**9)
    vps = w.vpss["customer1"]
    ops_before = Operation.objects.filter(target_id=str(vps.ctid)).count()
    steps = [(0, 0), (1, 7 * 10**8), (2, 8 * 10**8), (3, 9 * 10**8), (4, 10**9), (5, 10**9 + 1), (6, 2 * 10**9)]
    for minute, tx in steps:
        usage_batch(batch("n1", T0 + minute * MIN, sample(vps, tx=tx)))
    period = TrafficPeriod.objects.get(vps=vps)
    assert (period.start, period.end, period.tx_bytes, period.quota) == (
        datetime.date(2026, 11, 20), datetime.date(2026, 12, 20), 2 * 10**9, 10**9)
    notices = list(Notice.objects.filter(recipient=w.t.customer1).values_list("event", flat=True).order_by("pk"))
    suspended = ["vps.suspended"] if action == OverQuotaAction.SUSPEND else []  # the suspension says why
    assert notices == ["usage.traffic_80", "usage.traffic_100", *suspended]
    ops = Operation.objects.filter(target_id=str(vps.ctid)).order_by("created")[ops_before:]
    vps.refresh_from_db()
    if action == OverQuotaAction.THROTTLE:
        assert [o.action for o in ops] == ["node.vps.set"]
        assert ops[0].payload["limits"]["rate_out"] == 10**6 and vps.limits["rate_in"] == 10**6
        assert traffic.lift_throttles(datetime.date(2026, 12, 19)) == 0
        assert traffic.lift_throttles(datetime.date(2026, 12, 20)) == 1
        vps.refresh_from_db()
        assert vps.limits["rate_out"] == 10**9
        assert traffic.lift_throttles(datetime.date(2026, 12, 21)) == 0
    else:
        assert [o.action for o in ops] == ["node.vps.stop"]
        assert vps.suspended and vps.suspend_reason == "Monthly traffic quota used up"
    assert period.over_action == action
    others = TrafficPeriod.objects.exclude(vps=vps)
    assert not others.exists() and not Notice.objects.filter(recipient=w.t.customer2).exists()


def test_report_per_customer_and_reseller(w):
    for name, rx in (("customer1", 1000), ("customer1b", 2000), ("customer2", 4000)):
        vps = w.vpss[name]
        usage_batch(batch("n1", T0, sample(vps, cpu_s=0)))
        usage_batch(batch("n1", T0 + MIN, sample(vps, cpu_s=6, rx=rx)))
    rollups.rollup(Rollup.FIVE_MINUTES, now=T0 + 10 * MIN)
    window = (T0, T0 + 10 * MIN)
    mine = reports.usage_report(w.t.reseller1, *window)
    assert [(r["username"], r["rx_bytes"]) for r in mine] == [("customer1", 1000), ("customer1b", 2000)]
    assert mine[0]["cpu_percent_avg"] == pytest.approx(10.0)
    assert [r["username"] for r in reports.usage_report(w.t.customer2, *window)] == ["customer2"]
    per_reseller = {r["username"]: r["rx_bytes"] for r in reports.usage_report(w.t.admin, *window, "reseller")}
    assert per_reseller == {"reseller1": 3000, "reseller2": 4000}
    assert VPS.objects.count() == 4 and timezone.now() > T0
