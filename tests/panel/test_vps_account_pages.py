"""The VPS pages that change the customer's access and plan, and the usage parts.

Same set-up as tests/panel/test_vps_pages.py (its fixtures): nothing reaches a node, the
operations stay in a transaction that never commits.
"""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from panel.core.models import Operation
from panel.nodes import ippools
from panel.nodes.models import IPAddress
from panel.plans.models import Allocation
from panel.usage.models import Beancounter, FailEvent, Sample, TrafficPeriod
from panel.vps.models import VPS
from tests.panel.tenants import client_for
from tests.panel.test_vps_pages import GB, ed25519_key, granted, node, small_plan, t, vpss  # noqa: F401 (fixtures)
from worker import protocol

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


# --- root password, SSH keys, reverse DNS, suspension --------------------------------------------

def test_root_password_is_checked_and_never_kept(t, vpss):  # noqa: F811
    vps = vpss["customer1"]
    client = client_for(t.customer1)
    differ = client.post(f"/vps/{vps.ctid}/password/", {"password": "s3cret-horse", "again": "s3cret-house"})
    assert differ.status_code == 400 and "The two passwords differ." in differ.content.decode()
    short = client.post(f"/vps/{vps.ctid}/password/", {"password": "short", "again": "short"})
    assert short.status_code == 400 and "Use 8 to 128 characters." in short.content.decode()
    assert not Operation.objects.exists()
    response = client.post(f"/vps/{vps.ctid}/password/", {"password": "s3cret-horse", "again": "s3cret-horse"})
    op = Operation.objects.get()
    assert op.action == protocol.TASK_VPS_SET and response["Location"] == f"/vps/{vps.ctid}/?op={op.pk}"
    assert "$6$" not in str(op.payload) and "s3cret-horse" not in str(op.payload)
    assert "s3cret-horse" not in client.get(response["Location"]).content.decode()


def test_ssh_keys_one_per_line(t, vpss):  # noqa: F811
    vps = vpss["customer1"]
    client = client_for(t.customer1)
    bad = client.post(f"/vps/{vps.ctid}/ssh-keys/", {"ssh_keys": f"{ed25519_key(1)}\nssh-rsa nonsense"})
    assert bad.status_code == 400 and "Key 2:" in bad.content.decode()
    assert not Operation.objects.exists()
    client.post(f"/vps/{vps.ctid}/ssh-keys/", {"ssh_keys": f"{ed25519_key(1)}\r\n\n{ed25519_key(2, 'work')}\n"})
    vps.refresh_from_db()
    assert vps.ssh_keys == [ed25519_key(1), ed25519_key(2, "work")]
    assert Operation.objects.get().action == protocol.TASK_VPS_SET
    assert ed25519_key(2, "work") in client.get(f"/vps/{vps.ctid}/").content.decode()


def test_reverse_dns_of_the_vps_addresses_only(t, vpss, node):  # noqa: F811
    pool = ippools.create_pool(name="v4", family=4, network="198.51.100.0/28", node=node)
    mine = ippools.allocate(pool, owner=t.customer1, assigned_to=vpss["customer1"].budget_holder)
    theirs = ippools.allocate(pool, owner=t.customer2, assigned_to=vpss["customer2"].budget_holder)
    client = client_for(t.customer1)
    page = client.get(f"/vps/{vpss['customer1'].ctid}/").content.decode()
    assert mine.address in page and theirs.address not in page
    assert f"<code>{mine.address}</code>" in client.get("/vps/").content.decode()  # no "/32"
    url = f"/vps/{vpss['customer1'].ctid}/addresses/{mine.pk}/ptr/"
    assert client.post(url, {"ptr": "not a name"}).status_code == 400
    assert client.post(url, {"ptr": "web1.example.com."})["Location"] == f"/vps/{vpss['customer1'].ctid}/"
    assert IPAddress.objects.get(pk=mine.pk).ptr == "web1.example.com"
    # another VPS's address through my VPS, or another tenant's VPS: not found
    assert client.post(f"/vps/{vpss['customer1'].ctid}/addresses/{theirs.pk}/ptr/", {"ptr": "x.example.com"}
                       ).status_code == 404
    assert client.post(f"/vps/{vpss['customer2'].ctid}/addresses/{theirs.pk}/ptr/", {"ptr": "x.example.com"}
                       ).status_code == 404
    assert IPAddress.objects.get(pk=theirs.pk).ptr == ""


def test_plan_change_offers_the_customers_plans_and_reserves_the_budget(t, node):  # noqa: F811
    granted(t, t.reseller1, t.customer1, ram=3 * 2**30)
    small, big = small_plan(t.reseller1), small_plan(t.reseller1, name="big", ram=2 * 2**30)
    huge = small_plan(t.reseller1, name="huge", ram=4 * 2**30)
    foreign = small_plan(t.reseller2, name="foreign")
    client = client_for(t.customer1)
    client.post("/vps/add/", {"plan": small.pk, "template": "busybox", "hostname": "web1"})
    vps = VPS.objects.get()
    page = client.get(f"/vps/{vps.ctid}/").content.decode()
    assert ">big<" in page and "foreign" not in page
    assert client.post(f"/vps/{vps.ctid}/plan/", {"plan": foreign.pk}).status_code == 400
    over = client.post(f"/vps/{vps.ctid}/plan/", {"plan": huge.pk})
    assert over.status_code == 400 and "budget" in over.content.decode()
    response = client.post(f"/vps/{vps.ctid}/plan/", {"plan": big.pk})
    vps.refresh_from_db()
    op = Operation.objects.first()
    assert (vps.plan, vps.limits["ram"], op.action) == (big, 2 * 2**30, protocol.TASK_VPS_SET)
    assert response["Location"] == f"/vps/{vps.ctid}/?op={op.pk}"
    assert Allocation.objects.get(holder=vps.budget_holder).ram == 2 * 2**30


def test_the_reseller_changes_a_customers_plan_on_the_vps_page(t, node):  # noqa: F811
    """The reseller's own view of a customer's VPS offers the customer's plans; the change is
    reserved against the customer's budget like the customer's own."""
    granted(t, t.reseller1, t.customer1, ram=3 * 2**30)
    small, big = small_plan(t.reseller1), small_plan(t.reseller1, name="big", ram=2 * 2**30)
    client_for(t.customer1).post("/vps/add/", {"plan": small.pk, "template": "busybox", "hostname": "web1"})
    vps = VPS.objects.get()
    reseller = client_for(t.reseller1)
    assert ">big<" in reseller.get(f"/vps/{vps.ctid}/").content.decode()
    assert client_for(t.reseller2).post(f"/vps/{vps.ctid}/plan/", {"plan": big.pk}).status_code == 404
    response = reseller.post(f"/vps/{vps.ctid}/plan/", {"plan": big.pk})
    vps.refresh_from_db()
    op = Operation.objects.filter(action=protocol.TASK_VPS_SET).get()
    assert (vps.plan, vps.limits["ram"], op.user) == (big, 2 * 2**30, t.reseller1)
    assert response["Location"] == f"/vps/{vps.ctid}/?op={op.pk}"
    assert Allocation.objects.get(holder=vps.budget_holder).ram == 2 * 2**30


def test_suspension_by_the_reseller_locks_the_customer_out(t, vpss):  # noqa: F811
    vps = vpss["customer1"]
    customer, reseller = client_for(t.customer1), client_for(t.reseller1)
    assert customer.post(f"/vps/{vps.ctid}/suspend/", {"reason": "mine"}).status_code == 403
    assert client_for(t.reseller2).post(f"/vps/{vps.ctid}/suspend/", {"reason": "x"}).status_code == 404
    assert not Operation.objects.exists()

    response = reseller.post(f"/vps/{vps.ctid}/suspend/", {"reason": "unpaid invoice 2026-11"})
    op = Operation.objects.get()
    assert op.action == protocol.TASK_VPS_STOP and response["Location"] == f"/vps/{vps.ctid}/?op={op.pk}"
    vps.refresh_from_db()
    assert vps.suspended and vps.suspend_reason == "unpaid invoice 2026-11"

    page = customer.get(f"/vps/{vps.ctid}/").content.decode()
    assert "This VPS is suspended" in page and "unpaid invoice 2026-11" in page
    assert "/start/" not in page and "/hostname/" not in page and "/destroy/" not in page
    assert "Suspended" in customer.get("/vps/").content.decode()
    for action in ("start", "stop", "restart"):
        assert customer.post(f"/vps/{vps.ctid}/{action}/").status_code == 403, action
    assert customer.post(f"/vps/{vps.ctid}/hostname/", {"hostname": "x1"}).status_code == 403
    assert Operation.objects.count() == 1

    reseller.post(f"/vps/{vps.ctid}/unsuspend/")
    vps.refresh_from_db()
    assert not vps.suspended
    assert Operation.objects.first().action == protocol.TASK_VPS_START
    assert "This VPS is suspended" not in customer.get(f"/vps/{vps.ctid}/").content.decode()


# --- usage (only what the node reported) ----------------------------------------------------------

def test_usage_part_shows_what_the_node_reported_and_nothing_else(t, vpss):  # noqa: F811
    vps = vpss["customer1"]
    client = client_for(t.customer1)
    empty = client.get(f"/vps/{vps.ctid}/usage/").content.decode()
    assert "has not reported usage" in empty and "Resource counters" not in empty
    assert "RAM in use" not in client.get("/").content.decode()

    now = timezone.now()
    Sample.objects.create(vps=vps, time=now, epoch="e1", ram_bytes=2**29, disk_bytes=3 * GB, cpu_percent=12.5,
                          processes=17)
    today = timezone.localdate()
    TrafficPeriod.objects.create(vps=vps, start=today - datetime.timedelta(days=3),
                                 end=today + datetime.timedelta(days=27), rx_bytes=600 * GB, tx_bytes=200 * GB,
                                 quota=1000 * GB)
    for resource, held, limit, failcnt in (("numproc", 17, 128, 0), ("numfile", 950, 1000, 0),
                                           ("physpages", 2**28, 2**28, 4), ("kmemsize", 10**9, 2**63 - 1, 0)):
        Beancounter.objects.create(vps=vps, resource=resource, held=held, maxheld=held, barrier=limit, limit=limit,
                                   failcnt=failcnt, updated=now)
    FailEvent.objects.create(vps=vps, time=now, resource="numproc", count=4, held=128, limit=128)

    part = client.get(f"/vps/{vps.ctid}/usage/").content.decode()
    assert "536.87 MB" in part and "12.5 % of one CPU" in part and "17 processes" in part
    assert "800 GB" in part and "of 1 TB" in part and 'aria-label="Traffic this period: 80 %"' in part
    assert '<tr class="row-warn"><th scope="row"><code>numfile</code>' in part
    assert '<tr class="row-bad"><th scope="row"><code>physpages</code>' in part
    assert "<tr><th scope=\"row\"><code>numproc</code>" in part
    assert "Processes and threads reached the limit (128 of 128): 4 requests refused." in part
    kmem = part[part.index("<code>kmemsize</code>"):].split("</tr>")[0]
    assert "1 GB" in kmem and kmem.count("unlimited") == 2  # bytes with units; LONG_MAX is no limit
    assert "<td class=\"nowrap\">128</td>" in part  # counts stay counts

    card = client.get("/dashboard/vpss/").content.decode()
    assert "RAM in use" in card and 'aria-label="Traffic this month: 80 %"' in card
    for viewer in (t.customer2, t.reseller2):
        assert client_for(viewer).get(f"/vps/{vps.ctid}/usage/").status_code == 404
    assert client_for(t.reseller1).get(f"/vps/{vps.ctid}/usage/").status_code == 200


def test_staff_dashboards_list_the_vpss_that_hit_limits_lately(t, vpss):  # noqa: F811
    now = timezone.now()
    FailEvent.objects.create(vps=vpss["customer1"], time=now, resource="numproc", count=3, held=128, limit=128)
    FailEvent.objects.create(vps=vpss["customer1"], time=now, resource="numproc", count=2, held=128, limit=128)
    FailEvent.objects.create(vps=vpss["customer2"], time=now - datetime.timedelta(days=2), resource="numfile",
                             count=9)
    for viewer, shown in ((t.admin, True), (t.reseller1, True), (t.reseller2, False)):
        page = client_for(viewer).get("/").content.decode()
        assert ("one.example.com</a>: <code>numproc</code> refused 5 requests" in page) == shown, viewer
        assert "numfile" not in page  # older than a day
    assert "Limits hit" not in client_for(t.customer1).get("/").content.decode()
