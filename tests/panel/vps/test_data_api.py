"""The VPS data API (reinstall, snapshots, backups): who may do what, slots, Idempotency-Key, node facts."""

from __future__ import annotations

import datetime

import pytest

from panel.core.models import Operation
from panel.core.notify.models import Notice
from panel.core.services import apply_report
from panel.vps.models import Backup, Snapshot
from tests.panel.tenants import client_for
from tests.panel.vps.test_api import JSON, ssh_key, visible, world  # noqa: F401 (the fixture)
from worker import protocol

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
BACKUP_ID = "20261128T010203.123456Z"
LISTS = ("snapshots/", "backups/")  # GET under /api/vps/vps/<ctid>/


def data_calls(url: str) -> list[tuple[str, str, dict]]:
    """Every data endpoint of the VPS at `url` as (method, path, body)."""
    return [("post", f"{url}reinstall/", {"template": "busybox", "password": "long enough pw"}),
            ("post", f"{url}snapshots/", {"name": "s2"}), ("post", f"{url}snapshots/s1/rollback/", {}),
            ("delete", f"{url}snapshots/s1/", {}), ("post", f"{url}backups/", {}),
            ("post", f"{url}backups/{BACKUP_ID}/restore/", {}), ("delete", f"{url}backups/{BACKUP_ID}/", {})]


def made(vps):
    """The fixture's VPSs are still "being created" (no node runs them): data actions need a made one."""
    vps.state = "running"
    vps.save()
    return vps


def report(op_id: str, *, snapshots=(), backups=()) -> None:
    """What the node would answer: the operation succeeded, the VPS runs, these are its snapshots and backups."""
    op = Operation.objects.get(pk=op_id)
    apply_report(protocol.Report(
        operation_id=op_id, node=op.node_name, status=protocol.Status.SUCCEEDED,
        facts={"ctid": int(op.target_id), "state": "running", "init_pid": 4242,
               "snapshots": [{"name": n, "created": 1795000000.5} for n in snapshots],
               "backups": [{"id": i, "created": 1795000001.0, "size": 1234} for i in backups]}))


@pytest.mark.parametrize("viewer_name", ["admin", "reseller1", "reseller2", "customer1", "customer2"])
def test_data_endpoints_answer_only_to_whom_may_see_the_vps(world, viewer_name):  # noqa: F811
    t, _plan, vpss = world
    viewer = getattr(t, viewer_name)
    c = client_for(viewer)
    for vps in vpss.values():
        url = f"/api/vps/vps/{vps.ctid}/"
        Snapshot.objects.get_or_create(vps=vps, name="s1", defaults={"created": vps.created})
        Backup.objects.get_or_create(vps=vps, backup_id=BACKUP_ID, defaults={"created": vps.created, "size": 1})
        if visible(viewer, vps):
            assert [s["name"] for s in c.get(f"{url}snapshots/").json()] == ["s1"]
            assert [b["backup_id"] for b in c.get(f"{url}backups/").json()] == [BACKUP_ID]
            continue
        for path in LISTS:
            assert c.get(f"{url}{path}").status_code == 404
        for method, path, body in data_calls(url):
            assert getattr(c, method)(path, body, content_type=JSON).status_code == 404, (method, path)
    assert not Operation.objects.filter(action__in=protocol.VPS_DATA_TASKS).exists()


def test_each_data_endpoint_answers_202_with_its_operation(world):  # noqa: F811
    t, _plan, vpss = world
    vps = made(vpss["customer1"])
    Snapshot.objects.create(vps=vps, name="s1", created=vps.created)
    Backup.objects.create(vps=vps, backup_id=BACKUP_ID, created=vps.created, size=1)
    c = client_for(t.customer1)
    url = f"/api/vps/vps/{vps.ctid}/"
    tasks = [protocol.TASK_VPS_REINSTALL, protocol.TASK_VPS_SNAPSHOT, protocol.TASK_VPS_ROLLBACK,
             protocol.TASK_VPS_SNAPSHOT_DELETE, None, protocol.TASK_VPS_RESTORE, protocol.TASK_VPS_BACKUP_DELETE]
    for (method, path, body), task in zip(data_calls(url), tasks, strict=True):
        response = getattr(c, method)(path, body, content_type=JSON)
        if task is None:  # backups/: the plan's one slot is taken by the existing backup
            assert response.status_code == 400 and "backup slots" in str(response.json()), response.content
            continue
        assert response.status_code == 202, (path, response.content)
        op = c.get(response.json()["operation_url"]).json()
        assert (op["action"], op["target_id"]) == (task, str(vps.ctid))
    reinstall = Operation.objects.get(action=protocol.TASK_VPS_REINSTALL)
    assert reinstall.payload["root_password_hash"] == "********"
    assert "long enough" not in str(Operation.objects.values_list("payload", flat=True))
    assert Operation.objects.get(action=protocol.TASK_VPS_SNAPSHOT).payload["snapshot"] == "s2"


def test_snapshots_and_backups_follow_the_nodes_facts_and_their_limits(world):  # noqa: F811
    t, _plan, vpss = world
    vps = made(vpss["customer1"])
    c = client_for(t.customer1)
    url = f"/api/vps/vps/{vps.ctid}/"
    first = c.post(f"{url}snapshots/", {"name": "before-upgrade"}, content_type=JSON)
    assert first.status_code == 202
    assert c.post(f"{url}snapshots/", {"name": "backup-1"}, content_type=JSON).status_code == 400  # node's own
    assert c.post(f"{url}snapshots/", {"name": "bad name"}, content_type=JSON).status_code == 400
    report(first.json()["operation"], snapshots=["before-upgrade"])
    assert [s["name"] for s in c.get(f"{url}snapshots/").json()] == ["before-upgrade"]
    assert c.post(f"{url}snapshots/", {"name": "before-upgrade"}, content_type=JSON).status_code == 400
    for name in ("two", "three"):
        assert c.post(f"{url}snapshots/", {"name": name}, content_type=JSON).status_code == 202
    refused = c.post(f"{url}snapshots/", {"name": "four"}, content_type=JSON)
    assert refused.status_code == 400 and "at most 3 snapshots" in str(refused.json())
    assert c.post(f"{url}snapshots/nope/rollback/").status_code == 400

    # Backups: one slot (the plan's default); a running backup takes it until the node reports.
    backup = c.post(f"{url}backups/")
    assert backup.status_code == 202
    assert c.post(f"{url}backups/").status_code == 400
    report(backup.json()["operation"], snapshots=["before-upgrade"], backups=[BACKUP_ID])
    (notice,) = Notice.objects.filter(recipient=t.customer1)
    assert (notice.event, notice.title) == ("vps.backup_finished", "VPS customer1-vps: backup finished")
    (listed,) = c.get(f"{url}backups/").json()
    assert (listed["backup_id"], listed["size"]) == (BACKUP_ID, 1234)
    assert datetime.datetime.fromisoformat(listed["created"]).timestamp() == 1795000001.0
    assert c.post(f"{url}backups/").status_code == 400
    restore = c.post(f"{url}backups/{BACKUP_ID}/restore/")
    assert restore.status_code == 202
    report(restore.json()["operation"], snapshots=[], backups=[BACKUP_ID])  # a restore drops the snapshots
    assert c.get(f"{url}snapshots/").json() == [] and len(c.get(f"{url}backups/").json()) == 1
    vps.refresh_from_db()
    assert vps.state == "running" and vps.desired_state == "running"
    # destroyed on the node: the rows go
    gone = c.delete(url)
    apply_report(protocol.Report(operation_id=gone.json()["operation"], node="n1", status="succeeded",
                                 facts={"ctid": vps.ctid, "state": "absent", "init_pid": None}))
    assert not Backup.objects.filter(vps=vps).exists()


def test_idempotency_key_makes_a_retried_action_one_operation(world):  # noqa: F811
    t, _plan, vpss = world
    url = f"/api/vps/vps/{made(vpss['customer1']).ctid}/"
    c = client_for(t.customer1)
    first = c.post(f"{url}backups/", content_type=JSON, HTTP_IDEMPOTENCY_KEY="b-1")
    again = c.post(f"{url}backups/", content_type=JSON, HTTP_IDEMPOTENCY_KEY="b-1")
    assert first.status_code == again.status_code == 202
    assert first.json()["operation"] == again.json()["operation"]
    assert c.post(f"{url}snapshots/", {"name": "s"}, content_type=JSON, HTTP_IDEMPOTENCY_KEY="b-1").status_code == 422
    body = {"template": "busybox", "password": "long enough pw"}
    one = c.post(f"{url}reinstall/", body, content_type=JSON, HTTP_IDEMPOTENCY_KEY="r-1")
    two = c.post(f"{url}reinstall/", body, content_type=JSON, HTTP_IDEMPOTENCY_KEY="r-1")
    assert one.status_code == 202 and one.json()["operation"] == two.json()["operation"]
    assert Operation.objects.filter(action=protocol.TASK_VPS_REINSTALL).count() == 1
    assert Operation.objects.filter(action=protocol.TASK_VPS_BACKUP).count() == 1


def test_reinstall_refusals_and_suspension(world):  # noqa: F811
    t, _plan, vpss = world
    vps = vpss["customer1"]
    url = f"/api/vps/vps/{vps.ctid}/"
    customer, reseller = client_for(t.customer1), client_for(t.reseller1)
    creating = customer.post(f"{url}reinstall/", {"template": "busybox", "password": "long enough pw"},
                             content_type=JSON)
    assert creating.status_code == 400 and "being created" in str(creating.json())
    made(vps)
    no_login = customer.post(f"{url}reinstall/", {"template": "busybox"}, content_type=JSON)
    assert no_login.status_code == 400 and "password" in no_login.json()
    assert customer.post(f"{url}reinstall/", {"template": "alpine", "password": "long enough pw"},
                         content_type=JSON).status_code == 400
    assert customer.post(f"{url}reinstall/", {"template": "busybox", "password": "short"},
                         content_type=JSON).status_code == 400
    with_key = customer.post(f"{url}reinstall/", {"template": "busybox", "ssh_keys": [ssh_key()]}, content_type=JSON)
    assert with_key.status_code == 202
    vps.refresh_from_db()
    assert vps.ssh_keys == [ssh_key()]

    assert reseller.post(f"{url}suspend/", {"reason": "unpaid"}, content_type=JSON).status_code == 202
    for method, path, body in data_calls(url):
        assert getattr(customer, method)(path, body, content_type=JSON).status_code == 403, path
    assert reseller.post(f"{url}snapshots/", {"name": "audit"}, content_type=JSON).status_code == 202
    assert reseller.post(f"{url}reinstall/", {"template": "busybox", "password": "long enough pw"},
                         content_type=JSON).status_code == 403  # it would run the VPS
