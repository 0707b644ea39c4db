"""A budget's "used": what its VPSs hold per the usage app, on the budget page, the dashboard and in the API."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from panel.nodes import ippools
from panel.plans import budgets
from panel.plans.models import Budget
from panel.usage import held
from panel.usage.models import Rollup, Sample
from panel.usage.tasks import usage_batch
from panel.vps.choices import VpsState
from panel.vps.models import VPS
from tests.panel.tenants import client_for
from tests.panel.usage.world import GIB, batch, build, sample

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
MIN = datetime.timedelta(minutes=1)
MB = 10**6


@pytest.fixture
def w():
    return build()


def running(vps: VPS) -> None:
    VPS.objects.filter(pk=vps.pk).update(state=VpsState.RUNNING)


def feed(w, at: datetime.datetime) -> None:
    """customer1's VPS runs: fresh samples (RAM 300 MB, 30 s of CPU a minute, 3000 + 600 bytes of traffic);
    customer1b's stopped 10 minutes before `at`; reseller2's customer2 runs a big VPS that is not reseller1's."""
    c1, c1b, c2 = w.vpss["customer1"], w.vpss["customer1b"], w.vpss["customer2"]
    for vps in (c1, c2):
        running(vps)
    usage_batch(batch("n1", at - 10 * MIN, sample(c1b, ram=GIB, rx=500)))
    usage_batch(batch("n1", at - 2 * MIN, sample(c1, ram=300 * MB, rx=1000, tx=200),
                      sample(c2, ram=8 * GIB, cpu_s=0, rx=10**9)))
    usage_batch(batch("n1", at - MIN, sample(c1, ram=300 * MB, cpu_s=30, rx=3000, tx=600),
                      sample(c2, ram=8 * GIB, cpu_s=60, rx=2 * 10**9)))


def test_used_counts_what_the_vpss_hold_now(w):
    at = (timezone.now() - datetime.timedelta(days=40)).replace(day=15, hour=12, minute=0, second=0, microsecond=0)
    feed(w, at)
    pool = ippools.create_pool(name="v4", family=4, network="198.51.100.0/29", gateway="198.51.100.1", node=w.node)
    v6 = ippools.create_pool(name="v6", family=6, network="2001:db8:100::/62", unit_prefix=64, node=w.node)
    c1 = w.vpss["customer1"]
    for p in (pool, pool, v6):
        ippools.allocate(p, owner=w.t.customer1, assigned_to=c1.budget_holder)
    ippools.allocate(pool, owner=w.t.customer2, assigned_to=w.vpss["customer2"].budget_holder)

    got = held.used(w.t.reseller1, now=at)
    # RAM and CPU of the running VPS only (customer1b's sample is stale); disk of both; traffic of both.
    assert got == {"vps_count": 1, "ram": 300 * MB, "cpus": 0.5, "disk": 2 * 10**9, "ipv4": 2, "ipv6_prefixes": 1,
                   "traffic": 3600 + 500}
    assert held.used(w.t.customer1b, now=at) == {"vps_count": 0, "ram": 0, "cpus": 0.0, "disk": 10**9, "ipv4": 0,
                                                 "ipv6_prefixes": 0, "traffic": 500}
    # A VPS stopped long ago: its raw samples expired, its disk comes from the hourly rollups.
    Sample.objects.filter(vps=w.vpss["customer1b"]).delete()
    Rollup.objects.create(vps=w.vpss["customer1b"], period=Rollup.HOUR, start=at - 3 * 24 * 60 * MIN,
                          disk_max=700 * MB)
    assert held.used(w.t.customer1b, now=at)["disk"] == 700 * MB
    # Ten minutes on, nothing fresh: RAM and CPU are no longer held; a destroyed VPS holds nothing.
    later = held.used(w.t.reseller1, now=at + 10 * MIN)
    assert (later["ram"], later["cpus"], later["disk"]) == (0, 0.0, 10**9 + 700 * MB)
    VPS.objects.filter(pk=c1.pk).update(state=VpsState.DESTROYED)
    assert held.used(w.t.reseller1, now=at) == {"vps_count": 0, "ram": 0, "cpus": 0.0, "disk": 700 * MB, "ipv4": 0,
                                                "ipv6_prefixes": 0, "traffic": 500}


def test_the_budget_page_the_dashboard_and_the_api_show_used(w):
    feed(w, timezone.now())
    budgets.grant(w.t.admin, w.t.reseller1, vps_count=10, ram=4 * GIB, disk=100 * 10**9, cpus=8, ipv4=None,
                  ipv6_prefixes=None, traffic=None)
    client = client_for(w.t.reseller1)
    for url in ("/budget/", "/"):
        page = client.get(url).content.decode()
        assert "300 MB used" in page and "2 GB used" in page and "0.5 used" in page, url
        assert "RAM: 2.15 GB of 4.29 GB allocated, 300 MB used" in page, url
        assert "once usage is collected" not in page
    budget = Budget.objects.get(grantee=w.t.reseller1)
    data = client.get(f"/api/plans/budgets/{budget.pk}/").json()
    # (traffic: this period's, which the samples of a few minutes ago may have straddled the start of)
    assert data["used"] == {"vps_count": 1, "ram": 300 * MB, "cpus": 0.5, "disk": 2 * 10**9, "ipv4": 0,
                            "ipv6_prefixes": 0, "traffic": held.used(w.t.reseller1)["traffic"]}
    assert data["allocated"]["ram"] == 2 * GIB
    # The admin's view of the reseller's budget, and reseller2's own: each its own VPSs.
    assert "300 MB used" in client_for(w.t.admin).get(f"/users/{w.t.reseller1.pk}/budget/").content.decode()
    other = client_for(w.t.reseller2).get("/budget/").content.decode()
    assert "300 MB used" not in other and "8.59 GB used" in other
