"""The second-level quota editor of the VPS page: stored on the VPS, sent whole with a `set`, per tenant.

Nothing reaches a node here (operations are dispatched after a commit that
never comes); the node side is tests/vmhost/test_ugid_converge.py.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from panel.core.models import Operation
from panel.nodes.choices import NodeState
from panel.nodes.models import Node
from panel.vps import services
from panel.vps.choices import VpsState
from panel.vps.models import VPS, next_ctid
from tests.panel.tenants import client_for, make_tenants
from worker import protocol

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
GB = 10**9


@pytest.fixture
def t():
    return make_tenants()


@pytest.fixture
def vps(t) -> VPS:
    node = Node.objects.create(name="n1", state=NodeState.UP, last_seen=timezone.now())
    return VPS.objects.create(ctid=next_ctid(), node=node, customer=t.customer1, hostname="q.example.com",
                              template="busybox", state=VpsState.RUNNING, limits={"ram": 2**30, "quotaugidlimit": 2})


def last_set(vps: VPS) -> Operation:
    return Operation.objects.filter(target_id=str(vps.ctid), action=protocol.TASK_VPS_SET).order_by("-created")[0]


def test_customer_sets_changes_and_removes_a_quota_and_each_goes_to_the_node_whole(t, vps):
    client = client_for(t.customer1)
    assert f'hx-get="/vps/{vps.ctid}/quotas/"' in client.get(f"/vps/{vps.ctid}/").content.decode()
    card = client.get(f"/vps/{vps.ctid}/quotas/").content.decode()
    assert "at most 2 users and 2 groups" in card and "No user or group has limits." in card

    response = client.post(f"/vps/{vps.ctid}/quotas/set/", {"kind": "user", "ident": "1000", "space_hard": "5 GB",
                                                           "space_soft": "4 GB", "inodes_hard": "10000"})
    assert response.status_code == 302 and "?op=" in response["Location"]
    sent = last_set(vps).payload["ugid_quotas"]
    assert sent == [{"kind": "user", "id": 1000, "space_soft": 4 * GB, "space_hard": 5 * GB, "inodes_soft": 0,
                     "inodes_hard": 10000}]
    client.post(f"/vps/{vps.ctid}/quotas/set/", {"kind": "group", "ident": "50", "space_hard": "1 GB"})
    client.post(f"/vps/{vps.ctid}/quotas/set/", {"kind": "user", "ident": "1000", "space_hard": "6 GB"})
    assert [(q["kind"], q["id"], q["space_hard"]) for q in last_set(vps).payload["ugid_quotas"]] == [
        ("user", 1000, 6 * GB), ("group", 50, GB)]
    card = client.get(f"/vps/{vps.ctid}/quotas/").content.decode()
    assert "<code>1000</code></td><td>6 GB</td>" in card and 'aria-label="Remove the quota of group 50"' in card

    client.post(f"/vps/{vps.ctid}/quotas/remove/", {"kind": "group", "ident": "50"})
    vps.refresh_from_db()
    assert [q["id"] for q in vps.ugid_quotas] == [1000]
    assert [q["id"] for q in last_set(vps).payload["ugid_quotas"]] == [1000]


def test_more_ids_than_the_plan_allows_and_bad_values_are_refused_in_plain_words(t, vps):
    client = client_for(t.customer1)
    for ident in ("1000", "1001"):
        client.post(f"/vps/{vps.ctid}/quotas/set/", {"kind": "user", "ident": ident, "space_hard": "1 GB"})
    sets = Operation.objects.filter(action=protocol.TASK_VPS_SET).count()
    page = client.post(f"/vps/{vps.ctid}/quotas/set/", {"kind": "user", "ident": "1002", "space_hard": "1 GB"})
    assert page.status_code == 400 and "At most 2 users may have limits on this plan" in page.content.decode()
    page = client.post(f"/vps/{vps.ctid}/quotas/set/", {"kind": "user", "ident": "70000", "space_hard": "1 GB",
                                                       "space_soft": "2 GB"})
    text = page.content.decode()
    assert page.status_code == 400 and "must not be above the hard limit" in text and "65535" in text
    assert Operation.objects.filter(action=protocol.TASK_VPS_SET).count() == sets
    vps.refresh_from_db()
    assert [q["id"] for q in vps.ugid_quotas] == [1000, 1001]


def test_no_editor_without_a_second_level_and_none_for_other_tenants(t, vps):
    for viewer, status in ((t.customer2, 404), (t.reseller2, 404), (t.reseller1, 200), (t.admin, 200)):
        assert client_for(viewer).get(f"/vps/{vps.ctid}/quotas/").status_code == status, viewer
        response = client_for(viewer).post(f"/vps/{vps.ctid}/quotas/set/", {"kind": "user", "ident": "1",
                                                                           "space_hard": "1 GB"})
        assert response.status_code == (404 if status == 404 else 302), viewer
    vps.refresh_from_db()
    assert [q["id"] for q in vps.ugid_quotas] == [1]  # the reseller's and the admin's

    vps.limits = {"ram": 2**30}
    vps.save()
    client = client_for(t.customer1)
    assert "quotas/" not in client.get(f"/vps/{vps.ctid}/").content.decode()
    assert client.get(f"/vps/{vps.ctid}/quotas/").status_code == 404
    page = client.post(f"/vps/{vps.ctid}/quotas/set/", {"kind": "user", "ident": "2", "space_hard": "1 GB"})
    assert "has no per-user disk quotas" in page.content.decode()


def test_a_smaller_quotaugidlimit_sends_the_lowest_ids_of_each_kind(t, vps):
    vps.ugid_quotas = [{"kind": k, "id": i, "space_soft": 0, "space_hard": GB, "inodes_soft": 0, "inodes_hard": 0}
                       for k, i in (("user", 1001), ("user", 1000), ("group", 7))]
    vps.limits = {**vps.limits, "quotaugidlimit": 1}
    assert [(q["kind"], q["id"]) for q in services.ugid_quotas(vps)] == [("user", 1000), ("group", 7)]
    vps.limits = {**vps.limits, "quotaugidlimit": 0}
    assert services.ugid_quotas(vps) == []
