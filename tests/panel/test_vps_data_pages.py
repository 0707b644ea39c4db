"""The VPS data pages (reinstall, the snapshots and backups card): tenants, confirmation, slots, polling.

Nothing reaches a node here (operations are dispatched after a commit that never comes); the browser
tier (tests/browser/test_vps_data.py) drives the same pages against a real node.
"""

from __future__ import annotations

import pytest

from panel.core.models import Operation
from panel.vps.models import Backup, Snapshot
from tests.panel.tenants import client_for
from tests.panel.test_vps_pages import VIEWERS, may_view, node, t, vpss  # noqa: F401 (fixtures)
from worker import protocol

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
BACKUP_ID = "20261128T010203.123456Z"
PAGES = ("reinstall/", "data/")  # GET under /vps/<ctid>/


def data_posts(ctid: int) -> list[str]:
    return [f"/vps/{ctid}/snapshots/", f"/vps/{ctid}/snapshots/s1/rollback/", f"/vps/{ctid}/snapshots/s1/delete/",
            f"/vps/{ctid}/backups/", f"/vps/{ctid}/backups/{BACKUP_ID}/restore/",
            f"/vps/{ctid}/backups/{BACKUP_ID}/delete/", f"/vps/{ctid}/reinstall/"]


@pytest.mark.parametrize("viewer_name", VIEWERS)
def test_data_pages_answer_by_tenant(t, vpss, viewer_name):  # noqa: F811
    client = client_for(getattr(t, viewer_name))
    wrong = []
    for owner_name, vps in vpss.items():
        Snapshot.objects.create(vps=vps, name="s1", created=vps.created)
        Backup.objects.create(vps=vps, backup_id=BACKUP_ID, created=vps.created, size=2048)
        ok = may_view(t, viewer_name, owner_name)
        for url in (f"/vps/{vps.ctid}/{page}" for page in PAGES):
            status = client.get(url).status_code
            if status != (200 if ok else 404):
                wrong.append(f"GET {url}: {status}")
        if not ok:
            wrong += [f"POST {url}" for url in data_posts(vps.ctid) if client.post(url).status_code != 404]
    assert wrong == []
    assert not Operation.objects.filter(action__in=protocol.VPS_DATA_TASKS).exists()


def test_reinstall_needs_the_hostname_typed_and_sends_only_a_hash(t, vpss):  # noqa: F811
    vps = vpss["customer1"]
    client = client_for(t.customer1)
    page = client.get(f"/vps/{vps.ctid}/reinstall/").content.decode()
    assert "BusyBox" in page and "Type the host name to confirm" in page and "data-confirm" in page
    form = {"template": "busybox", "password": "a fine password", "again": "a fine password", "ssh_keys": ""}
    wrong = client.post(f"/vps/{vps.ctid}/reinstall/", {**form, "confirm": "one"})
    assert wrong.status_code == 400 and "Type one.example.com to confirm." in wrong.content.decode()
    differ = client.post(f"/vps/{vps.ctid}/reinstall/", {**form, "again": "other", "confirm": "one.example.com"})
    assert differ.status_code == 400 and "The two passwords differ." in differ.content.decode()
    nothing = client.post(f"/vps/{vps.ctid}/reinstall/", {**form, "password": "", "again": "",
                                                          "confirm": "one.example.com"})
    assert nothing.status_code == 400 and "Give root a new password or an SSH key" in nothing.content.decode()
    assert not Operation.objects.exists()

    done = client.post(f"/vps/{vps.ctid}/reinstall/", {**form, "confirm": "one.example.com"})
    op = Operation.objects.get(action=protocol.TASK_VPS_REINSTALL)
    assert done.status_code == 302 and done["Location"] == f"/vps/{vps.ctid}/?op={op.pk}"
    assert op.payload["template"] == "busybox" and op.payload["root_password_hash"] == "********"
    assert "a fine password" not in str(op.payload)
    assert "Reinstall" in client.get(done["Location"]).content.decode()


def test_the_card_lists_what_the_node_has_offers_actions_and_polls_while_busy(t, vpss):  # noqa: F811
    vps = vpss["customer1"]
    Snapshot.objects.create(vps=vps, name="before-upgrade", created=vps.created)
    client = client_for(t.customer1)
    card = client.get(f"/vps/{vps.ctid}/data/", HTTP_HX_REQUEST="true")
    text = card.content.decode()
    assert card.status_code == 286 and "hx-trigger" not in text  # idle: no polling
    assert "before-upgrade" in text and "Roll back" in text and "No backups." in text and "0 of 1 slot" in text

    taken = client.post(f"/vps/{vps.ctid}/backups/")
    op = Operation.objects.get(action=protocol.TASK_VPS_BACKUP)
    assert taken["Location"] == f"/vps/{vps.ctid}/?op={op.pk}" and op.payload["keep"] == 1
    busy = client.get(f"/vps/{vps.ctid}/data/", HTTP_HX_REQUEST="true")
    assert busy.status_code == 200 and 'hx-trigger="every 3s"' in busy.content.decode()
    # The slot is taken by the running backup: a second one is refused with a message, not an error page.
    refused = client.post(f"/vps/{vps.ctid}/backups/", follow=True)
    assert "All 1 backup slots of this VPS are in use" in refused.content.decode()
    assert Operation.objects.filter(action=protocol.TASK_VPS_BACKUP).count() == 1

    client.post(f"/vps/{vps.ctid}/snapshots/", {"name": "mine"})
    client.post(f"/vps/{vps.ctid}/snapshots/before-upgrade/rollback/")
    assert [(o.action, o.payload.get("snapshot")) for o in Operation.objects.order_by("created")][1:] == [
        (protocol.TASK_VPS_SNAPSHOT, "mine"), (protocol.TASK_VPS_ROLLBACK, "before-upgrade")]


def test_other_tenants_see_no_action_buttons(t, vpss):  # noqa: F811
    vps = vpss["customer1"]
    Snapshot.objects.create(vps=vps, name="s1", created=vps.created)
    text = client_for(t.reseller1).get(f"/vps/{vps.ctid}/data/").content.decode()
    assert "Roll back" in text  # the customer's reseller may act
    vps.suspended = True
    vps.save()
    text = client_for(t.customer1).get(f"/vps/{vps.ctid}/data/").content.decode()
    assert "s1" in text and "Roll back" not in text and "Back up now" not in text
