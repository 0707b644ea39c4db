"""What each role does through the browser pages (Django's test client), and the htmx parts."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client

from panel.accounts.models import User
from panel.core.audit.models import ObjectChange
from panel.core.models import Operation
from panel.core.notify import services as notify
from panel.core.notify.models import Notice, Webhook
from panel.core.views import HTMX_STOP_POLLING
from panel.nodes.models import IPPool, Node
from panel.plans import budgets
from panel.plans.models import Budget, Plan
from tests.panel.tenants import PASSWORD, Tenants, client_for, make_tenants

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

GB = 10**9
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def t() -> Tenants:
    return make_tenants()


def plan_form(**changes) -> dict:
    data = {"name": "r1-small", "description": "", "active": "on", "ram": "1 GiB", "swap": "512 MiB",
            "diskspace": "20 GB", "diskinodes": 200000, "quotaugidlimit": 0, "cpus": 1, "cpulimit": 0,
            "cpuunits": 1000, "numproc": 0, "numfile": 0, "iolimit": "0", "iopslimit": 0,
            "port_speed": "100 Mbit/s", "traffic": "1 TB", "traffic_reset_day": 1, "over_quota_action": "throttle",
            "throttle_rate": "1 Mbit/s", "ipv4_count": 1, "ipv6_mode": "prefix64", "ipv6_count": 1,
            "backup_slots": 1}
    return {**data, **changes}


def test_reseller_creates_and_edits_its_own_plan_with_units(t):
    client = client_for(t.reseller1)
    response = client.post("/plans/add/", plan_form())
    assert response.status_code == 302, response.content.decode()
    plan = Plan.objects.get(name="r1-small")
    assert (plan.owner, plan.ram, plan.swap, plan.diskspace, plan.port_speed, plan.traffic) == (
        t.reseller1, 2**30, 2**29, 20 * GB, 10**8, 10**12)
    detail = client.get(f"/plans/{plan.pk}/").content.decode()
    assert "1.07 GB" in detail and "100 Mbit/s" in detail
    page = client.get(f"/plans/{plan.pk}/edit/").content.decode()
    assert 'value="1 GiB"' in page and 'value="100 Mbit/s"' in page  # shown in units that parse back
    assert client.post(f"/plans/{plan.pk}/edit/", plan_form(ram="2 GiB")).status_code == 302
    plan.refresh_from_db()
    assert plan.ram == 2 * 2**30
    bad = client.post("/plans/add/", plan_form(name="r1-other", ram="lots"))
    assert bad.status_code == 400 and "Not a size" in bad.content.decode()
    # the same name as a global plan is fine for a reseller's own plan
    assert client.post("/plans/add/", plan_form(name="vswap-1g")).status_code == 302


def test_admin_makes_global_plans_and_plans_for_a_reseller(t):
    client = client_for(t.admin)
    assert client.post("/plans/add/", plan_form(name="global-x")).status_code == 302
    assert Plan.objects.get(name="global-x").owner is None
    assert client.post("/plans/add/", plan_form(name="for-r2", owner=t.reseller2.pk)).status_code == 302
    assert Plan.objects.get(name="for-r2").owner == t.reseller2


def test_reseller_creates_a_customer_and_suspends_it(t):
    client = client_for(t.reseller1)
    response = client.post("/users/add/", {"username": "newbie", "email": "n@example.com", "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()
    newbie = User.objects.get(username="newbie")
    assert newbie.owner == t.reseller1 and newbie.is_customer and newbie.check_password(PASSWORD)
    assert client.post(f"/users/{newbie.pk}/suspend/").status_code == 302
    newbie.refresh_from_db()
    assert not newbie.is_active
    refused = Client().post("/login/", {"username": "newbie", "password": PASSWORD})
    assert refused.status_code == 200 and "did not match" in refused.content.decode()
    assert client.post(f"/users/{newbie.pk}/unsuspend/").status_code == 302
    newbie.refresh_from_db()
    assert newbie.is_active
    # a reseller cannot suspend itself, and a weak password is refused on the form
    client.post(f"/users/{t.reseller1.pk}/suspend/")
    t.reseller1.refresh_from_db()
    assert t.reseller1.is_active
    weak = client.post("/users/add/", {"username": "weak", "password": "123"})
    assert weak.status_code == 400 and not User.objects.filter(username="weak").exists()


def test_customer_budget_stays_within_the_resellers(t):
    budgets.grant(t.admin, t.reseller1, vps_count=5, ram=4 * GB, disk=None, cpus=None, ipv4=None,
                  ipv6_prefixes=None, traffic=None)
    client = client_for(t.reseller1)
    url = f"/users/{t.customer1.pk}/budget/"
    over = client.post(url, {"vps_count": 2, "ram": "8 GB"})
    assert over.status_code == 400 and "At most the reseller&#x27;s own budget" in over.content.decode()
    assert not Budget.objects.filter(grantee=t.customer1).exists()
    assert client.post(url, {"vps_count": 2, "ram": "2 GB", "disk": "10 GB", "cpus": 1, "ipv4": 1,
                             "ipv6_prefixes": 1, "traffic": "1 TB"}).status_code == 302
    assert Budget.objects.get(grantee=t.customer1).ram == 2 * GB
    # a reseller grants nobody but its customers (not itself, not the other tenant)
    assert client.post(f"/users/{t.reseller1.pk}/budget/", {"ram": "1 GB"}).status_code == 403
    assert client.post(f"/users/{t.customer2.pk}/budget/", {"ram": "1 GB"}).status_code == 404
    # the htmx card on the user page: granted against allocated
    budgets.reserve(t.customer1, "vps:1", budgets.Demand(ram=GB))
    card = client.get(url, **HTMX).content.decode()
    assert "1 GB" in card and "of 2 GB" in card and "<html" not in card


def test_admin_grants_a_reseller_budget_and_reads_the_list(t):
    client = client_for(t.admin)
    assert client.post(f"/users/{t.reseller2.pk}/budget/", {"vps_count": 3, "ram": ""}).status_code == 302
    budget = Budget.objects.get(grantee=t.reseller2)
    assert budget.vps_count == 3 and budget.ram is None  # empty = unlimited
    assert "unlimited" in client.get("/budgets/").content.decode()


def test_admin_creates_an_ip_pool_and_sees_its_allocations(t):
    node = Node.objects.create(name="n1")
    client = client_for(t.admin)
    response = client.post("/ip-pools/add/", {"name": "v4", "family": 4, "network": "198.51.100.0/28",
                                              "gateway": "198.51.100.1", "unit_prefix": 32, "node": node.pk,
                                              "active": "on"})
    assert response.status_code == 302, response.content.decode()
    pool = IPPool.objects.get(name="v4")
    overlap = client.post("/ip-pools/add/", {"name": "v4b", "family": 4, "network": "198.51.100.0/24",
                                             "unit_prefix": 32, "node": node.pk})
    assert overlap.status_code == 400 and "Overlaps pool v4" in overlap.content.decode()
    from panel.nodes import ippools

    ippools.allocate(pool, owner=t.customer1, assigned_to="vps:101")
    page = client.get(f"/ip-pools/{pool.pk}/").content.decode()
    assert "198.51.100.2/32" in page and "vps:101" in page and "customer1" in page
    assert ">12<" in page  # free: 14 hosts - gateway - 1 allocated


def test_audit_log_filters_and_exports_csv(t):
    client = client_for(t.reseller1)
    client.post("/users/add/", {"username": "audited", "password": PASSWORD})
    audited = User.objects.get(username="audited")
    change = ObjectChange.objects.get(object_id=str(audited.pk), action="create", content_type__model="user")
    assert change.user == t.reseller1 and change.source == "web" and change.request_id
    admin = client_for(t.admin)
    page = admin.get("/audit/", {"request_id": change.request_id}).content.decode()
    assert "audited" in page and "1 row" in page
    exported = admin.get("/audit/", {"user": t.reseller1.pk, "export": "csv"})
    assert exported["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert [r["Object"] for r in rows] == ["audited"] and rows[0]["Who"] == "reseller1"
    assert "No changes match." in admin.get("/audit/", {"time_after": "2999-01-01T00:00"}).content.decode()
    detail = admin.get(f"/audit/{change.pk}/").content.decode()
    assert "username" in detail and "audited" in detail


def test_notices_are_listed_and_marked_read(t):
    notice = notify.notify(t.customer1, "traffic.80_percent", "80 % of your traffic used", email=False)
    notify.notify(t.customer2, "test.event", "not yours", email=False)
    client = client_for(t.customer1)
    page = client.get("/notices/").content.decode()
    assert "80 % of your traffic used" in page and "not yours" not in page
    assert client.post(f"/notices/{notice.pk}/read/").status_code == 302
    notice.refresh_from_db()
    assert notice.read_at is not None
    notify.notify(t.customer1, "test.event", "another", email=False)
    client.post("/notices/read/")
    assert not Notice.objects.filter(recipient=t.customer1, read_at__isnull=True).exists()


def test_reseller_adds_and_deletes_a_webhook(t):
    client = client_for(t.reseller1)
    response = client.post("/webhooks/add/", {"name": "crm", "url": "https://hooks.example.com/in",
                                              "events": "vps.*, traffic.80_percent", "active": "on"})
    assert response.status_code == 302, response.content.decode()
    hook = Webhook.objects.get(name="crm")
    assert hook.owner == t.reseller1 and hook.events == ["vps.*", "traffic.80_percent"]
    assert hook.secret in client.get(f"/webhooks/{hook.pk}/").content.decode()
    bad = client.post("/webhooks/add/", {"name": "x", "url": "https://h.example.com/", "events": "Not An Event"})
    assert bad.status_code == 400
    assert client.post(f"/webhooks/{hook.pk}/delete/").status_code == 302
    assert not Webhook.objects.filter(pk=hook.pk).exists()


def test_password_change_keeps_the_session(t):
    client = client_for(t.customer1)
    new = "a much longer passphrase"
    response = client.post("/account/password/", {"old_password": PASSWORD, "new_password1": new,
                                                  "new_password2": new})
    assert response.status_code == 302
    t.customer1.refresh_from_db()
    assert t.customer1.check_password(new)
    assert client.get("/account/").status_code == 200


def test_operation_progress_polls_until_the_operation_ends(t):
    op = Operation.objects.create(action="node.ping", node_name="n1", user=t.customer1, status="running",
                                  percent=40, stage="copying")
    client = client_for(t.customer1)
    running = client.get(f"/operations/{op.pk}/", **HTMX)
    body = running.content.decode()
    assert running.status_code == 200 and 'hx-trigger="every 1s"' in body and 'aria-valuenow="40"' in body
    Operation.objects.filter(pk=op.pk).update(status="failed", error_code="node.unreachable",
                                              error_message="The node did not answer.")
    done = client.get(f"/operations/{op.pk}/", **HTMX)
    assert done.status_code == HTMX_STOP_POLLING
    assert "hx-trigger" not in done.content.decode() and "The node did not answer." in done.content.decode()


def test_node_list_refreshes_only_its_table(t):
    Node.objects.create(name="n1", capacity={"cpus": 4, "memory_total": 8 * GB, "memory_available": 6 * GB,
                                             "load1": 0.5})
    client = client_for(t.admin)
    full = client.get("/nodes/").content.decode()
    assert 'hx-trigger="every 5s"' in full and "<nav" in full
    part = client.get("/nodes/", HTTP_HX_TARGET="table-region", **HTMX).content.decode()
    assert "<nav" not in part and "n1" in part and "6 GB" in part and "of 8 GB" in part


def test_tables_sort_and_page(t):
    client = client_for(t.admin)
    names = [u.username for u in User.objects.order_by("-username")]
    page = client.get("/users/", {"sort": "-username", "per_page": 3}).content.decode()
    table = page[page.index("<table"):]
    assert table.index(names[0]) < table.index(names[1]) < table.index(names[2])
    assert names[3] not in table and "Page 1 of 3" in page
    assert 'aria-sort="descending"' in page
