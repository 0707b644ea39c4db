"""The permission matrix: 3 roles x 2 tenants, every API object, list, detail, change and delete."""

import pytest
from django.test import Client

from panel.accounts.choices import Role
from tests.panel.api.world import Obj, World, build_world

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

# Endpoints whose rows are personal: visible to their user (and to admins), not to the user's reseller.
PERSONAL = {"accounts/tokens", "core/notices"}
# Global objects (owner None) a non-admin may see.
GLOBAL_VISIBLE = {("plans/plans", "global")}
# Extra actions on an object, POSTed by the change matrix (relative to the object's URL).
OBJECT_ACTIONS = {"core/notices": ("read/",)}


def expected_visible(viewer, obj: Obj) -> bool:
    """Written out from the table in docs/panel-domain.md, independently of the querysets."""
    if viewer.role == Role.ADMIN:
        return True
    if obj.owner is None:
        return (obj.endpoint, obj.kind) in GLOBAL_VISIBLE
    if obj.kind == "journal" and viewer.role == Role.CUSTOMER:
        return False  # staff notes
    if obj.owner == viewer:
        return True
    if obj.endpoint == "plans/plans" and viewer.role == Role.CUSTOMER:
        return obj.owner.pk == viewer.owner_id  # the plans its reseller sells
    if obj.endpoint in PERSONAL:
        return False
    return viewer.role == Role.RESELLER and obj.owner.owner_id == viewer.pk


@pytest.fixture
def world() -> World:
    return build_world()


def listed_ids(client: Client, endpoint: str) -> set[str]:
    response = client.get(f"/api/{endpoint}/", {"limit": 1000})
    assert response.status_code == 200, (endpoint, response.content)
    return {str(row["id"]) for row in response.json()["results"]}


@pytest.mark.parametrize("viewer_name", ["admin", "reseller1", "reseller2", "customer1", "customer2", "customer0"])
def test_every_object_is_visible_exactly_to_whom_it_should_be(world, viewer_name):
    viewer = getattr(world.t, viewer_name)
    client = Client()
    client.force_login(viewer)
    endpoints = sorted({o.endpoint for o in world.objects})
    listings = {endpoint: listed_ids(client, endpoint) for endpoint in endpoints}
    mismatches = []
    for obj in world.objects:
        visible = expected_visible(viewer, obj)
        if (str(obj.pk) in listings[obj.endpoint]) != visible:
            mismatches.append(f"list {obj.endpoint} {obj.pk} (owner {obj.owner}): expected visible={visible}")
        status = client.get(obj.url).status_code
        if status != (200 if visible else 404):
            mismatches.append(f"GET {obj.url}: {status}, expected {'200' if visible else '404'}")
    assert mismatches == []


@pytest.mark.parametrize("viewer_name", ["reseller1", "customer1", "reseller2", "customer2"])
def test_the_other_tenants_objects_cannot_be_changed_or_deleted(world, viewer_name):
    viewer = getattr(world.t, viewer_name)
    client = Client()
    client.force_login(viewer)
    invisible = [o for o in world.objects if not expected_visible(viewer, o)]
    assert len(invisible) > 20
    for obj in invisible:
        for method in ("patch", "put", "delete"):
            response = getattr(client, method)(obj.url, {"name": "taken"}, content_type="application/json")
            assert response.status_code in (404, 405), (method, obj.url, response.status_code)
        for action in OBJECT_ACTIONS.get(obj.endpoint, ()):
            assert client.post(f"{obj.url}{action}").status_code == 404, (obj.url, action)
    # ...and nothing was changed: every object still answers to an admin exactly as before
    admin = Client()
    admin.force_login(world.t.admin)
    for obj in world.objects:
        response = admin.get(obj.url)
        assert response.status_code == 200, obj.url
        assert response.json().get("name") != "taken"
        assert response.json().get("read_at", None) is None


def creates(world: World, other: str) -> dict[str, dict]:
    """A create for every endpoint that takes one, each pointing at the `other` tenant (reseller1 or reseller2)."""
    reseller = getattr(world.t, other)
    customer = world.t.customer2 if other == "reseller2" else world.t.customer1
    node, pool = (next(o.pk for o in world.objects if o.endpoint == e) for e in ("nodes/nodes", "nodes/pools"))
    plan = next(o.pk for o in world.objects if o.kind == "global")
    return {
        "accounts/users": {"username": "made-here", "password": "a-long-password-9", "role": "customer",
                           "owner": reseller.pk},
        "accounts/tokens": {"name": "made-here", "user": customer.pk},
        "core/journal": {"object_type": "accounts.user", "object_id": str(customer.pk), "comments": "made here"},
        "core/webhooks": {"name": "made-here", "url": "https://hooks.example.com/m", "events": ["vps.*"],
                          "owner": reseller.pk},
        "nodes/groups": {"name": "made-here"},
        "nodes/pools": {"name": "made-here", "family": 4, "network": "203.0.113.0/28", "node": node},
        "nodes/addresses": {"pool": pool, "owner": customer.pk},
        "plans/plans": {"name": "made-here", "ram": 2**30, "owner": reseller.pk},
        "plans/budgets": {"grantee": customer.pk, "vps_count": 1},
        "vps/vps": {"customer": customer.pk, "plan": plan, "template": "busybox", "hostname": "made-here"},
    }


@pytest.mark.parametrize("viewer_name", ["reseller1", "customer1", "reseller2", "customer2"])
def test_creates_pointing_at_the_other_tenant_put_nothing_there(world, viewer_name):
    """Whatever a create answers, what it made is the creator's own: visible to the creator, and
    nothing new is seen only by the other tenant (or only by admins: their global objects)."""
    viewer = getattr(world.t, viewer_name)
    mine, theirs, admin = Client(), Client(), Client()
    mine.force_login(viewer)
    theirs.force_login(world.t.of_role(viewer.role)[1])
    admin.force_login(world.t.admin)
    bodies = creates(world, "reseller2" if world.t.reseller1.pk in (viewer.pk, viewer.owner_id) else "reseller1")

    def only_theirs() -> dict[str, set[str]]:
        return {e: listed_ids(theirs, e) - listed_ids(mine, e) for e in bodies}

    before, everything = only_theirs(), {e: listed_ids(admin, e) for e in bodies}
    for endpoint, body in bodies.items():
        response = mine.post(f"/api/{endpoint}/", body, content_type="application/json")
        assert response.status_code < 500, (endpoint, response.status_code)
        made = listed_ids(admin, endpoint) - everything[endpoint]
        assert made <= listed_ids(mine, endpoint), (endpoint, response.status_code, response.content[:200])
    assert only_theirs() == before


def test_visible_but_not_changeable_answers_403(world):
    client = Client()
    client.force_login(world.t.reseller1)
    global_plan = next(o for o in world.objects if o.kind == "global")
    assert client.patch(global_plan.url, {"ram": 1}, content_type="application/json").status_code == 403
    client.force_login(world.t.customer1)
    own_budget = next(o for o in world.objects if o.endpoint == "plans/budgets" and o.owner == world.t.customer1)
    assert client.patch(own_budget.url, {"ram": 10**12}, content_type="application/json").status_code == 403
    assert client.delete(own_budget.url).status_code == 403


def test_anonymous_gets_401_everywhere(world):
    client = Client()
    for endpoint in sorted({o.endpoint for o in world.objects}):
        assert client.get(f"/api/{endpoint}/").status_code == 401, endpoint
