"""Positive paths per role: create → act → delete, with object counts, so an API that refuses everything fails."""

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client, override_settings

from panel.accounts.models import User
from panel.core.audit.models import JournalEntry, ObjectChange
from panel.core.notify import services as notify
from panel.core.notify.models import Webhook
from panel.nodes import ippools
from panel.nodes.models import IPAddress, IPPool, Node
from panel.plans import budgets
from panel.plans.models import Budget, Plan
from tests.panel.tenants import make_tenants

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
JSON = "application/json"


def as_user(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:500])
    return response.json() if response.content else {}


def test_admin_path():
    t = make_tenants()
    c = as_user(t.admin)
    node = Node.objects.create(name="n1")
    assert ok(c.get("/api/nodes/nodes/"))["count"] == 1
    pool = ok(c.post("/api/nodes/pools/", {"name": "v4", "family": 4, "network": "203.0.113.0/28", "node": node.pk},
                     content_type=JSON), 201)
    address = ok(c.post("/api/nodes/addresses/", {"pool": pool["id"], "owner": t.customer1.pk,
                                                   "assigned_to": "vps:7"}, content_type=JSON), 201)
    assert address["address"] == "203.0.113.1"
    ok(c.patch(f"/api/nodes/addresses/{address['id']}/", {"ptr": "vps7.example.com"}, content_type=JSON))
    ok(c.delete(f"/api/nodes/addresses/{address['id']}/"), 204)
    ok(c.delete(f"/api/nodes/pools/{pool['id']}/"), 204)
    assert not IPPool.objects.exists() and not IPAddress.objects.exists()

    plans_before = Plan.objects.count()
    plan = ok(c.post("/api/plans/plans/", {"name": "big", "ram": 8 * 2**30, "cpus": 4}, content_type=JSON), 201)
    assert plan["owner"] is None and plan["limits"]["ram"] == 8 * 2**30
    ok(c.patch(f"/api/plans/plans/{plan['id']}/", {"cpus": 6}, content_type=JSON))
    assert Plan.objects.get(pk=plan["id"]).cpus == 6
    ok(c.delete(f"/api/plans/plans/{plan['id']}/"), 204)
    assert Plan.objects.count() == plans_before

    reseller = ok(c.post("/api/accounts/users/", {"username": "r3", "role": "reseller",
                                                  "password": "a-long-password-9"}, content_type=JSON), 201)
    budget = ok(c.post("/api/plans/budgets/", {"grantee": reseller["id"], "vps_count": 5, "ram": 10 * 2**30},
                       content_type=JSON), 201)
    assert budget["allocated"]["vps_count"] == 0 and budget["disk"] == 0
    ok(c.post("/api/core/journal/", {"object_type": "accounts.user", "object_id": str(reseller["id"]),
                                     "comments": "New reseller, paid yearly."}, content_type=JSON), 201)
    ok(c.delete(f"/api/plans/budgets/{budget['id']}/"), 204)
    ok(c.delete(f"/api/accounts/users/{reseller['id']}/"), 204)
    assert not User.objects.filter(username="r3").exists()
    assert ok(c.get("/api/core/changes/", {"object_type": "accounts.user", "object_id": reseller["id"]}))["count"] == 2
    assert ok(c.get("/api/core/operations/"))["count"] == 0


def test_reseller_path():
    t = make_tenants()
    budgets.grant(t.admin, t.reseller1, vps_count=10, ram=16 * 2**30)
    c = as_user(t.reseller1)
    customer = ok(c.post("/api/accounts/users/", {"username": "newcust", "email": "n@example.com",
                                                  "password": "a-long-password-9"}, content_type=JSON), 201)
    assert customer["role"] == "customer" and customer["owner"] == t.reseller1.pk
    assert ok(c.get("/api/accounts/users/"))["count"] == 4  # itself, customer1, customer1b, newcust
    ok(c.post("/api/plans/budgets/", {"grantee": customer["id"], "vps_count": 2, "ram": 2**30}, content_type=JSON),
       201)
    refused = c.post("/api/plans/budgets/", {"grantee": t.customer1.pk, "ram": 32 * 2**30}, content_type=JSON)
    assert refused.status_code == 400 and "reseller's own budget" in str(refused.json())
    assert ok(c.post("/api/plans/budgets/", {"grantee": t.customer2.pk, "ram": 1}, content_type=JSON), 404)
    plan = ok(c.post("/api/plans/plans/", {"name": "r1-web", "ram": 2**30}, content_type=JSON), 201)
    assert plan["owner"] == t.reseller1.pk
    ok(c.patch(f"/api/plans/plans/{plan['id']}/", {"description": "web hosting"}, content_type=JSON))
    ok(c.delete(f"/api/plans/plans/{plan['id']}/"), 204)
    hook = ok(c.post("/api/core/webhooks/", {"name": "billing", "url": "https://billing.example.com/h",
                                             "events": ["vps.*"]}, content_type=JSON), 201)
    assert hook["owner"] == t.reseller1.pk and len(hook["secret"]) > 20
    bad = c.post("/api/core/webhooks/", {"name": "x", "url": "ftp://x", "events": []}, content_type=JSON)
    assert bad.status_code == 400
    ok(c.post("/api/core/journal/", {"object_type": "accounts.user", "object_id": str(customer["id"]),
                                     "comments": "Called about billing."}, content_type=JSON), 201)
    assert ok(c.post("/api/core/journal/", {"object_type": "accounts.user", "object_id": str(t.customer2.pk),
                                            "comments": "x"}, content_type=JSON), 404) is not None
    ok(c.patch(f"/api/accounts/users/{customer['id']}/", {"is_active": False}, content_type=JSON))
    assert ok(c.patch(f"/api/accounts/users/{customer['id']}/", {"role": "reseller"}, content_type=JSON), 403)
    ok(c.delete(f"/api/core/webhooks/{hook['id']}/"), 204)
    ok(c.delete(f"/api/accounts/users/{customer['id']}/"), 204)
    assert (Webhook.objects.count(), JournalEntry.objects.count()) == (0, 1)
    assert Budget.objects.filter(grantee__username="newcust").count() == 0


def test_customer_path():
    t = make_tenants()
    node = Node.objects.create(name="n1")
    pool = ippools.create_pool(name="v4", family=4, network="198.51.100.0/28", node=node)
    address = ippools.allocate(pool, owner=t.customer1)
    notice = notify.notify(t.customer1, "vps.suspended", "Suspended", email=False)
    c = as_user(t.customer1)
    ok(c.patch(f"/api/accounts/users/{t.customer1.pk}/", {"email": "new@example.com"}, content_type=JSON))
    assert ok(c.patch(f"/api/accounts/users/{t.customer1.pk}/", {"role": "admin"}, content_type=JSON), 403)
    assert ok(c.post("/api/accounts/users/", {"username": "x"}, content_type=JSON), 403)
    rows = ok(c.get("/api/nodes/addresses/"))["results"]
    assert [r["address"] for r in rows] == ["198.51.100.1"]
    ok(c.patch(f"/api/nodes/addresses/{address.pk}/", {"ptr": "mail.example.org", "owner": t.customer2.pk},
               content_type=JSON))
    address.refresh_from_db()
    assert (address.ptr, address.owner) == ("mail.example.org", t.customer1)  # only ptr is the customer's
    assert ok(c.delete(f"/api/nodes/addresses/{address.pk}/"), 403)
    assert ok(c.post(f"/api/core/notices/{notice.pk}/read/"))["read_at"] is not None
    assert ok(c.get("/api/core/notices/", {"unread": "true"}))["count"] == 0
    plans = ok(c.get("/api/plans/plans/"))["results"]
    assert {p["name"] for p in plans} >= {"vswap-256m", "vswap-4g"}
    assert ok(c.post("/api/plans/plans/", {"name": "mine"}, content_type=JSON), 403)
    token = ok(c.post("/api/accounts/tokens/", {"name": "cli", "scope": "read"}, content_type=JSON), 201)
    ok(c.delete(f"/api/accounts/tokens/{token['id']}/"), 204)
    assert ok(c.get("/api/accounts/events/"))["count"] >= 2
    assert ok(c.get("/api/core/changes/", {"object_type": "accounts.user"}))["count"] >= 2
    assert ObjectChange.objects.filter(user=t.customer1, source="api").exists()


def test_schema_and_docs_are_served():
    t = make_tenants()
    c = as_user(t.customer1)
    schema = c.get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for endpoint in ("/api/plans/budgets/", "/api/nodes/addresses/{id}/", "/api/accounts/tokens/",
                     "/api/core/changes/", "/api/core/webhooks/"):
        assert endpoint in paths
    assert "apiToken" in schema.json()["components"]["securitySchemes"]
    docs = c.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content and b"//cdn" not in docs.content


def test_throttling():
    t = make_tenants()
    c = as_user(t.customer1)
    cache.clear()
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK,
                                           "DEFAULT_THROTTLE_RATES": {"user": "3/min", "anon": "2/min"}}):
        statuses = [c.get("/api/plans/plans/").status_code for _ in range(4)]
    cache.clear()
    assert statuses == [200, 200, 200, 429]
