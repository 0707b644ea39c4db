"""The usage API: 3 roles x 2 tenants see exactly their VPSs' usage; series and reports answer from real batches."""

from __future__ import annotations

import datetime

import pytest

from panel.accounts.choices import Role
from panel.usage import rollups
from panel.usage.models import Rollup
from panel.usage.tasks import usage_batch
from tests.panel.tenants import client_for
from tests.panel.usage.world import T0, batch, build, physpages, sample

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
MIN = datetime.timedelta(minutes=1)
ENDPOINTS = ("beancounters", "fail-events", "traffic")
# What the matrix requests (tests/panel/test_route_matrix.py resolves these)
MATRIX_PATHS = (*(f"/api/usage/{e}/" for e in ENDPOINTS), *(f"/api/usage/{e}/{{id}}/" for e in ENDPOINTS),
                "/api/usage/series/{ctid}/", "/api/usage/report/")


@pytest.fixture
def w():
    w = build()
    for n, vps in enumerate(w.vpss.values()):
        usage_batch(batch("n1", T0, sample(vps, beancounters=physpages(0))))
        usage_batch(batch("n1", T0 + MIN, sample(vps, cpu_s=30, rx=1000 * (n + 1), beancounters=physpages(4))))
    rollups.rollup(Rollup.FIVE_MINUTES, now=T0 + 10 * MIN)
    return w


def visible(viewer, vps) -> bool:
    if viewer.role == Role.ADMIN:
        return True
    if viewer.role == Role.RESELLER:
        return vps.customer.owner_id == viewer.pk
    return vps.customer_id == viewer.pk


@pytest.mark.parametrize("viewer_name", ["admin", "admin2", "reseller1", "reseller2", "customer1", "customer2"])
def test_usage_is_visible_exactly_to_whom_the_vps_is(w, viewer_name):
    viewer = getattr(w.t, viewer_name)
    c = client_for(viewer)
    expected = {v.ctid for v in w.vpss.values() if visible(viewer, v)}
    assert expected
    for endpoint in ENDPOINTS:
        rows = c.get(f"/api/usage/{endpoint}/", {"limit": 1000}).json()["results"]
        assert {r["ctid"] for r in rows} == expected, endpoint
        for row in rows:
            assert c.get(f"/api/usage/{endpoint}/{row['id']}/").status_code == 200
    other = client_for(w.t.admin)
    for endpoint in ENDPOINTS:
        for row in other.get(f"/api/usage/{endpoint}/", {"limit": 1000}).json()["results"]:
            if row["ctid"] not in expected:
                assert c.get(f"/api/usage/{endpoint}/{row['id']}/").status_code == 404
    for vps in w.vpss.values():
        response = c.get(f"/api/usage/series/{vps.ctid}/", {"resolution": "raw", "since": T0.isoformat(),
                                                            "until": (T0 + 5 * MIN).isoformat()})
        assert response.status_code == (200 if vps.ctid in expected else 404)
    report = c.get("/api/usage/report/", {"since": T0.isoformat(), "until": (T0 + 10 * MIN).isoformat()})
    owners = {v.customer_id for v in w.vpss.values() if v.ctid in expected}
    assert {r["user"] for r in report.json()} == owners


def test_series_and_filters(w):
    vps = w.vpss["customer1"]
    c = client_for(w.t.customer1)
    window = {"since": T0.isoformat(), "until": (T0 + 10 * MIN).isoformat()}
    raw = c.get(f"/api/usage/series/{vps.ctid}/", {"resolution": "raw", **window}).json()
    assert [p["cpu_percent"] for p in raw["points"]] == [None, pytest.approx(50.0)]
    assert raw["limit_hits"][0]["resource"] == "physpages" and raw["limit_hits"][0]["count"] == 4
    five = c.get(f"/api/usage/series/{vps.ctid}/", {"resolution": "5min", **window}).json()
    assert [(p["samples"], p["rx_bytes"]) for p in five["points"]] == [(2, 1000)]
    too_long = c.get(f"/api/usage/series/{vps.ctid}/", {"resolution": "raw", "since": "2026-01-01T00:00:00Z"})
    assert too_long.status_code == 400
    assert c.get("/api/usage/fail-events/", {"ctid": vps.ctid, "resource": "physpages"}).json()["count"] == 1
    assert c.get("/api/usage/traffic/", {"on": "2026-11-27"}).json()["count"] == 1
    assert c.get("/api/usage/traffic/", {"on": "2027-03-01"}).json()["count"] == 0
    assert c.get("/api/usage/report/", {"group": "reseller"}).status_code == 403
    admin = client_for(w.t.admin).get("/api/usage/report/", {"group": "reseller", **window}).json()
    assert {r["username"]: r["rx_bytes"] for r in admin} == {"reseller1": 3000, "reseller2": 3000, "": 4000}


def test_anonymous_gets_401_and_odd_time_zones_are_no_server_error(w):
    from django.test import Client

    anonymous = Client()
    for path in ("/api/usage/beancounters/", "/api/usage/fail-events/", "/api/usage/traffic/",
                 "/api/usage/report/", f"/api/usage/series/{w.vpss['customer1'].ctid}/", "/api/vps/vps/",
                 f"/api/vps/vps/{w.vpss['customer1'].ctid}/"):
        assert anonymous.get(path).status_code == 401, path
    c = client_for(w.t.customer1)
    # PostgreSQL refuses offsets beyond +-15:59; the filter compares in UTC instead of answering 500
    response = c.get("/api/usage/fail-events/", {"since": "2026-11-27T00:00:00+19:08"})
    assert response.status_code == 200 and response.json()["count"] == 1
