"""The second-level quota API: who may list, set and remove entries, refusals that change nothing, idempotency.

Nothing reaches a node here (operations go to a queue no worker reads); the
node side is tests/vmhost/test_ugid_converge.py.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from panel.accounts import services as accounts
from panel.accounts.choices import TokenScope
from panel.core.models import Operation
from panel.nodes.choices import NodeState
from panel.nodes.models import Node
from panel.vps import quotas
from panel.vps.choices import VpsState
from panel.vps.models import VPS, next_ctid
from tests.panel.tenants import client_for, make_tenants
from tests.panel.vps.test_api import JSON, visible, world  # noqa: F401 (the fixture)
from tests.services import wait_for
from worker import protocol

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
GB = 10**9
ENTRY = {"kind": "user", "id": 1000, "space_hard": 5 * GB}
MATRIX_PATHS = ("quotas/", "quotas/user/1000/")  # under /api/vps/vps/<ctid>/ (tests/panel/test_route_matrix.py)


def with_quotas(vps: VPS, allowed: int = 2) -> VPS:
    """A VPS the node has made, on a plan allowing `allowed` users and as many groups."""
    vps.state, vps.limits = VpsState.RUNNING, {**vps.limits, "quotaugidlimit": allowed}
    vps.save()
    return vps


def sets(vps: VPS):
    return Operation.objects.filter(target_id=str(vps.ctid), action=protocol.TASK_VPS_SET).order_by("created")


def stored(vps: VPS) -> list[tuple[str, int]]:
    vps.refresh_from_db()
    return [(q["kind"], q["id"]) for q in vps.ugid_quotas]


@pytest.mark.parametrize("viewer_name", ["admin", "admin2", "reseller1", "reseller2", "customer1", "customer2"])
def test_quota_entries_answer_only_to_whom_may_change_the_vps(world, viewer_name):  # noqa: F811
    t, _plan, vpss = world
    viewer = getattr(t, viewer_name)
    c = client_for(viewer)
    for vps in vpss.values():
        url, one = (f"/api/vps/vps/{with_quotas(vps).ctid}/{path}" for path in MATRIX_PATHS)
        if not visible(viewer, vps):
            assert c.get(url).status_code == 404
            assert c.post(url, ENTRY, content_type=JSON).status_code == 404
            assert c.delete(one).status_code == 404
            continue
        assert c.get(url).json() == []
        response = c.post(url, ENTRY, content_type=JSON)
        assert response.status_code == 202, response.content
        op = c.get(response.json()["operation_url"]).json()
        assert (op["action"], op["target_id"]) == (protocol.TASK_VPS_SET, str(vps.ctid))
        assert [(q["kind"], q["id"]) for q in op["payload"]["ugid_quotas"]] == [("user", 1000)]
        assert [q["id"] for q in c.get(url).json()] == [1000]
        assert c.delete(one).status_code == 202
        assert stored(vps) == [] and sets(vps).count() == 2
    for vps in vpss.values():
        if not visible(viewer, vps):
            assert stored(vps) == [] and not sets(vps).exists()


def test_customer_sets_replaces_and_removes_entries_and_each_set_carries_the_whole_list(world):  # noqa: F811
    t, _plan, vpss = world
    vps = with_quotas(vpss["customer1"])
    c = client_for(t.customer1)
    url = f"/api/vps/vps/{vps.ctid}/quotas/"
    full = {"kind": "user", "id": 1000, "space_hard": 5 * GB, "space_soft": 4 * GB, "inodes_hard": 10000,
            "inodes_soft": 9000}
    assert c.post(url, full, content_type=JSON).status_code == 202
    assert c.post(url, {"kind": "group", "id": 50, "inodes_hard": 100}, content_type=JSON).status_code == 202
    replaced = c.post(url, {"kind": "user", "id": 1000, "space_hard": 6 * GB}, content_type=JSON)
    assert replaced.status_code == 202 and replaced["Location"] == replaced.json()["operation_url"]
    assert sets(vps).last().payload["ugid_quotas"] == [
        {"kind": "user", "id": 1000, "space_soft": 0, "space_hard": 6 * GB, "inodes_soft": 0, "inodes_hard": 0},
        {"kind": "group", "id": 50, "space_soft": 0, "space_hard": 0, "inodes_soft": 0, "inodes_hard": 100}]
    listed = c.get(url).json()
    assert [(q["kind"], q["id"], q["space_hard"], q["in_effect"]) for q in listed] == [
        ("group", 50, 0, True), ("user", 1000, 6 * GB, True)]

    removed = c.delete(f"{url}group/50/")
    assert removed.status_code == 202
    assert [q["id"] for q in Operation.objects.get(pk=removed.json()["operation"]).payload["ugid_quotas"]] == [1000]
    assert stored(vps) == [("user", 1000)] and sets(vps).count() == 4

    # The plan now allows none: the entry stays stored but is not in effect (the node gets an empty list).
    vps.limits = {**vps.limits, "quotaugidlimit": 0}
    vps.save()
    assert [(q["id"], q["in_effect"]) for q in c.get(url).json()] == [(1000, False)]


def test_bad_input_is_refused_in_plain_words_and_changes_nothing(world):  # noqa: F811
    t, _plan, vpss = world
    vps = with_quotas(vpss["customer1"])
    c = client_for(t.customer1)
    url = f"/api/vps/vps/{vps.ctid}/quotas/"
    for ident in (1000, 1001):
        assert c.post(url, {**ENTRY, "id": ident}, content_type=JSON).status_code == 202
    before = (stored(vps), sets(vps).count())
    refused = [
        ({**ENTRY, "id": 65536}, "id", "65535"),
        ({**ENTRY, "id": -1}, "id", "greater than or equal to 0"),
        ({**ENTRY, "id": "root"}, "id", "valid integer"),
        ({**ENTRY, "kind": "other"}, "kind", "not a valid choice"),
        ({"id": 1000, "space_hard": GB}, "kind", "required"),
        ({"kind": "user", "space_hard": GB}, "id", "required"),
        ({**ENTRY, "space_soft": 6 * GB}, "space_soft", "above the hard limit"),
        ({**ENTRY, "inodes_hard": 10, "inodes_soft": 11}, "inodes_soft", "above the hard limit"),
        ({**ENTRY, "space_hard": -5}, "space_hard", "greater than or equal to 0"),
        ({**ENTRY, "space_hard": 2**63}, "space_hard", "less than or equal to"),
        ({"kind": "user", "id": 7}, "non_field_errors", "at least one limit"),
        ({**ENTRY, "id": 1002}, "non_field_errors", "At most 2 users may have limits on this plan"),
    ]
    for body, field, words in refused:
        response = c.post(url, body, content_type=JSON)
        assert response.status_code == 400, (body, response.content)
        assert words in " ".join(response.json()[field]), (body, response.json())
    for path, words in (("user/7/", "User 7 has no limits"), ("group/1000/", "Group 1000 has no limits"),
                        ("user/99999/", "User 99999 has no limits")):
        response = c.delete(f"{url}{path}")
        assert response.status_code == 400 and words in str(response.json()), (path, response.content)
    assert c.delete(f"{url}other/7/").status_code == 404  # no such path
    assert (stored(vps), sets(vps).count()) == before

    # A plan without second-level quotas: nothing can be set.
    plain = vpss["customer1b"]
    plain.state = VpsState.RUNNING
    plain.save()
    response = client_for(t.reseller1).post(f"/api/vps/vps/{plain.ctid}/quotas/", ENTRY, content_type=JSON)
    assert response.status_code == 400 and "has no per-user disk quotas" in str(response.json())
    assert stored(plain) == [] and not sets(plain).exists()

    # A destroyed VPS: nothing either.
    vps.state = VpsState.DESTROYED
    vps.save()
    response = c.post(url, {**ENTRY, "space_hard": GB}, content_type=JSON)
    assert response.status_code == 400 and "destroyed" in str(response.json())
    assert c.delete(f"{url}user/1000/").status_code == 400
    assert (stored(vps), sets(vps).count()) == before


def test_a_suspended_vps_is_changed_by_its_reseller_not_its_customer(world):  # noqa: F811
    t, _plan, vpss = world
    vps = with_quotas(vpss["customer1"])
    url = f"/api/vps/vps/{vps.ctid}/"
    customer, reseller = client_for(t.customer1), client_for(t.reseller1)
    assert customer.post(f"{url}quotas/", ENTRY, content_type=JSON).status_code == 202
    assert reseller.post(f"{url}suspend/", {"reason": "unpaid"}, content_type=JSON).status_code == 202
    count = sets(vps).count()
    refused = customer.post(f"{url}quotas/", {**ENTRY, "id": 1001}, content_type=JSON)
    assert refused.status_code == 403 and "suspended: unpaid" in refused.json()["detail"]
    assert customer.delete(f"{url}quotas/user/1000/").status_code == 403
    assert [q["id"] for q in customer.get(f"{url}quotas/").json()] == [1000]  # still readable
    assert stored(vps) == [("user", 1000)] and sets(vps).count() == count
    assert reseller.post(f"{url}quotas/", {**ENTRY, "id": 1001}, content_type=JSON).status_code == 202
    assert reseller.delete(f"{url}quotas/user/1000/").status_code == 202
    assert stored(vps) == [("user", 1001)]


def test_idempotency_key_makes_a_retried_change_one_operation(world):  # noqa: F811
    t, _plan, vpss = world
    vps = with_quotas(vpss["customer1"])
    c = client_for(t.customer1)
    url = f"/api/vps/vps/{vps.ctid}/quotas/"
    first = c.post(url, ENTRY, content_type=JSON, HTTP_IDEMPOTENCY_KEY="q-1")
    again = c.post(url, ENTRY, content_type=JSON, HTTP_IDEMPOTENCY_KEY="q-1")
    assert first.status_code == again.status_code == 202
    assert first.json()["operation"] == again.json()["operation"]
    other = c.post(url, {**ENTRY, "space_hard": GB}, content_type=JSON, HTTP_IDEMPOTENCY_KEY="q-1")
    assert other.status_code == 422
    gone = c.delete(f"{url}user/1000/", HTTP_IDEMPOTENCY_KEY="q-2")
    retried = c.delete(f"{url}user/1000/", HTTP_IDEMPOTENCY_KEY="q-2")  # without the key: 400, nothing to remove
    assert gone.status_code == retried.status_code == 202
    assert gone.json()["operation"] == retried.json()["operation"]
    assert sets(vps).count() == 2 and stored(vps) == []


def test_a_read_only_token_lists_but_does_not_change(world):  # noqa: F811
    t, _plan, vpss = world
    vps = with_quotas(vpss["customer1"])
    url = f"/api/vps/vps/{vps.ctid}/quotas/"
    assert client_for(t.customer1).post(url, ENTRY, content_type=JSON).status_code == 202
    c = Client()
    for scope, read, change in ((TokenScope.READ, 200, 403), (TokenScope.WRITE, 200, 202)):
        _token, secret = accounts.create_token(t.customer1, name=f"quota-{scope}", scope=scope)
        auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
        assert c.get(url, **auth).status_code == read
        assert c.post(url, {**ENTRY, "id": 1001}, content_type=JSON, **auth).status_code == change
        assert c.delete(f"{url}user/1000/", **auth).status_code == change
    assert stored(vps) == [("user", 1001)] and sets(vps).count() == 3


def _set_in_thread(pk: int, user, backend: list[int], errors: list[Exception]) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend.append(cursor.fetchone()[0])
        vps = VPS.objects.select_related("node").get(pk=pk)  # as the API view reads it: before the change
        quotas.set_quota(user, vps, kind="group", ident=50, space_hard=GB)
    except Exception as exc:  # reported by the test
        errors.append(exc)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_two_changes_at_once_keep_both_entries():
    """Real transactions on two connections: the second change waits for the first one's row lock, then reads
    the list the first one committed (a stale read would drop the first entry)."""
    t = make_tenants()
    node = Node.objects.create(name="n1", state=NodeState.UP, last_seen=timezone.now())
    vps = VPS.objects.create(ctid=next_ctid(), node=node, customer=t.customer1, hostname="q.example.com",
                             template="busybox", state=VpsState.RUNNING, limits={"ram": 2**30, "quotaugidlimit": 2})
    backend: list[int] = []
    errors: list[Exception] = []
    thread = threading.Thread(target=_set_in_thread, args=(vps.pk, t.customer1, backend, errors))
    with transaction.atomic():
        quotas.set_quota(t.customer1, vps, kind="user", ident=1000, space_hard=GB)
        thread.start()

        def waiting() -> bool:  # pg_stat_activity would be this transaction's snapshot; lock waits are live
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid() = ANY(pg_blocking_pids(%s))", backend or [0])
                return cursor.fetchone()[0] or bool(errors)

        wait_for(waiting, 30, "the second change to wait for the VPS's row lock")
    thread.join(timeout=60)
    assert errors == [] and not thread.is_alive()
    assert stored(vps) == [("group", 50), ("user", 1000)]
    assert [len(op.payload["ugid_quotas"]) for op in sets(vps)] == [1, 2]
