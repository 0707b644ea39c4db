"""Usage in the browser's pages: a VPS's graph data per range, the usage report with CSV, rising-failcnt alerts."""

from __future__ import annotations

import csv
import datetime
import io

import pytest
from django.utils import timezone

from panel.usage import graphs, rollups
from panel.usage.models import FailEvent, Rollup
from panel.usage.tasks import usage_batch
from tests.panel.tenants import client_for
from tests.panel.usage.world import GIB, batch, build, sample

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
MIN = datetime.timedelta(minutes=1)


@pytest.fixture
def w():
    return build()


def feed(vps, start: datetime.datetime, minutes: list[int], rx_per_minute: int = 60_000) -> None:
    """Samples at `start` + each minute; CPU 6 s a minute (10 %), `rx_per_minute` bytes received a minute."""
    for n in minutes:
        usage_batch(batch("n1", start + n * MIN, sample(vps, cpu_s=6 * n, rx=rx_per_minute * n, ram=GIB // 4)))


def test_the_hour_graph_has_the_raw_samples_and_breaks_the_line_at_a_gap(w):
    vps = w.vpss["customer1"]
    now = timezone.now().replace(microsecond=0)
    start = now - 50 * MIN
    feed(vps, start, [0, 1, 2, 10, 11])  # stopped between minute 2 and 10
    data = graphs.graph(vps, "hour", now=now)
    assert data["t"][:3] == [int((start + n * MIN).timestamp()) for n in (0, 1, 2)]
    assert data["cpu"] == [None, 10.0, 10.0, None, 10.0, 10.0]  # minute 10: 48 s of CPU in 8 minutes
    assert data["t"][3] == data["t"][2] + 60 and data["ram"][3] is None  # the gap is a null point
    assert data["rx"][1] == pytest.approx(8000.0) and data["ram"][1] == GIB // 4
    assert data["limits"] == {"ram": GIB, "disk": None} and data["until"] - data["since"] == 3600


def test_day_week_month_and_year_read_the_rollups(w):
    vps = w.vpss["customer1"]
    now = timezone.now()
    start = rollups.bucket_start(now, Rollup.HOUR) - datetime.timedelta(hours=3)
    feed(vps, start, list(range(0, 121, 5)))
    rollups.rollup(Rollup.FIVE_MINUTES, now=now, lookback=datetime.timedelta(hours=4))
    rollups.rollup(Rollup.HOUR, now=now, lookback=datetime.timedelta(hours=4))
    day = graphs.graph(vps, "day", now=now)
    assert len(day["t"]) == 25 and day["step"] == 300 and day["cpu"][1] == pytest.approx(10.0)
    week = graphs.graph(vps, "week", now=now)
    assert len(week["t"]) == 3 and week["step"] == 3600 and week["cpu_max"][1] == pytest.approx(10.0)
    assert graphs.graph(vps, "month", now=now)["t"] == week["t"]
    year = graphs.graph(vps, "year", now=now)
    assert 1 <= len(year["t"]) <= 2 and year["ram_max"][0] == GIB // 4


def test_graph_json_only_for_who_may_view_the_vps(w):
    vps = w.vpss["customer1"]
    feed(vps, timezone.now() - 5 * MIN, [0, 1])
    for viewer, status in ((w.t.customer1, 200), (w.t.reseller1, 200), (w.t.admin, 200), (w.t.customer2, 404),
                           (w.t.reseller2, 404), (w.t.customer1b, 404)):
        response = client_for(viewer).get(f"/vps/{vps.ctid}/graphs/?range=hour")
        assert response.status_code == status, viewer
        if status == 200:
            assert len(response.json()["t"]) == 2 and response["Cache-Control"] == "private, no-store"
    assert client_for(w.t.customer1).get(f"/vps/{vps.ctid}/graphs/?range=decade").status_code == 404
    page = client_for(w.t.customer1).get(f"/vps/{vps.ctid}/").content.decode()
    assert f'data-graphs="/vps/{vps.ctid}/graphs/"' in page and "uPlot.iife.min.js" in page


def test_usage_report_per_customer_and_reseller_with_csv(w):
    now = timezone.now()
    start = rollups.bucket_start(now, Rollup.FIVE_MINUTES) - datetime.timedelta(minutes=30)
    for name, rx in (("customer1", 1000), ("customer1b", 2000), ("customer2", 4000)):
        feed(w.vpss[name], start, [0, 1], rx_per_minute=rx)
    rollups.rollup(Rollup.FIVE_MINUTES, now=now)
    rollups.rollup(Rollup.HOUR, now=now + datetime.timedelta(hours=1))

    page = client_for(w.t.reseller1).get("/usage/?days=1").content.decode()
    assert "customer1b" in page and "customer2" not in page and 'name="group"' not in page
    rows = list(csv.reader(io.StringIO(client_for(w.t.reseller1).get("/usage/?days=1&export=csv").content.decode())))
    assert rows[0][:4] == ["Customer", "VPSs", "Received", "Sent"]
    assert [(r[0], r[2]) for r in rows[1:]] == [("customer1", "1000"), ("customer1b", "2000")]

    per_reseller = client_for(w.t.admin).get("/usage/?days=30&group=reseller&export=csv")
    assert per_reseller["Content-Disposition"] == 'attachment; filename="usage-reseller-30d.csv"'
    rows = list(csv.reader(io.StringIO(per_reseller.content.decode())))
    assert rows[0][0] == "Reseller" and [(r[0], r[2]) for r in rows[1:]] == [("reseller1", "3000"),
                                                                             ("reseller2", "4000")]
    assert client_for(w.t.customer1).get("/usage/").status_code == 403


def test_alerts_list_vpss_whose_failcnt_keeps_rising(w):
    now = timezone.now()
    one, two = w.vpss["customer1"], w.vpss["customer2"]
    for hours_ago in (1, 3, 5):  # three different hours: keeps rising
        FailEvent.objects.create(vps=one, time=now - datetime.timedelta(hours=hours_ago), resource="numproc", count=2)
    for minutes_ago in (1, 2, 3, 4):  # one burst in one hour: not an alert
        FailEvent.objects.create(vps=two, time=now - datetime.timedelta(minutes=minutes_ago), resource="physpages",
                                 count=9)
    FailEvent.objects.create(vps=two, time=now - datetime.timedelta(hours=30), resource="physpages", count=9)
    for viewer, shown in ((w.t.admin, True), (w.t.reseller1, True), (w.t.reseller2, False)):
        page = client_for(viewer).get("/usage/").content.decode()
        assert (f'<a href="/vps/{one.ctid}/">customer1-vps</a>' in page) == shown, viewer
        assert "3 of 24" in page if shown else "No VPS kept hitting a limit" in page
        assert "customer2-vps" not in page
