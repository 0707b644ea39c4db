"""VPS lifecycle webhook events and the customer's notices: what the node finished, what the panel decided."""

from __future__ import annotations

import pytest
from django.db import transaction

from panel.core.models import Operation
from panel.core.notify import services as notify
from panel.core.notify.models import Notice, WebhookDelivery
from panel.core.services import apply_report
from panel.plans import services as plans
from panel.vps import services
from tests.panel.vps.test_api import world  # noqa: F401 (the fixture)
from worker import protocol

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def finish(op: Operation, state: str = "running", *, failed: str = "") -> None:
    """What the node would answer for `op`."""
    if failed:
        apply_report(protocol.Report(operation_id=str(op.pk), node=op.node_name, status=protocol.Status.FAILED,
                                     error_code="vps.failed", message=failed))
    else:
        apply_report(protocol.Report(operation_id=str(op.pk), node=op.node_name, status=protocol.Status.SUCCEEDED,
                                     facts={"ctid": int(op.target_id), "state": state, "init_pid": 4242}))


def sent(hook) -> list[tuple[str, dict]]:
    return [(d.event, d.payload) for d in WebhookDelivery.objects.filter(webhook=hook).order_by("created")]


def test_finished_node_operations_are_posted_to_the_tenants_webhooks(world):  # noqa: F811
    t, _plan, vpss = world
    admin_hook = notify.create_webhook(t.admin, name="all", url="https://hooks.example/a")
    r1_hook = notify.create_webhook(t.reseller1, name="r1", url="https://hooks.example/r1", events=["vps.*"])
    r2_hook = notify.create_webhook(t.reseller2, name="r2", url="https://hooks.example/r2", events=["vps.*"])
    vps = vpss["customer1"]
    create = Operation.objects.get(target_id=str(vps.ctid), action=protocol.TASK_VPS_START)  # create and start
    finish(create)
    finish(services.stop(t.customer1, vps), "stopped")
    vps.refresh_from_db()
    finish(services.start(t.customer1, vps), failed="no space left in the pool")

    events = sent(r1_hook)
    assert [e for e, _ in events] == ["vps.created", "vps.started", "vps.stopped", "vps.operation_failed"]
    created, started, stopped, failed = (payload for _, payload in events)
    assert created == started == {"ctid": vps.ctid, "hostname": "customer1-vps", "customer": "customer1",
                                  "operation": str(create.pk), "action": "start", "state": "running"}
    assert stopped["state"] == "stopped"
    assert failed["action"] == "start" and failed["error"] == "no space left in the pool"
    assert sent(admin_hook) == events
    assert sent(r2_hook) == []  # another reseller's customer


def test_suspension_tells_the_customer_why_and_webhooks_and_a_rollback_tells_no_one(world):  # noqa: F811
    t, _plan, vpss = world
    hook = notify.create_webhook(t.reseller1, name="r1", url="https://hooks.example/r1", events=["vps.*"])
    vps = vpss["customer1"]
    services.suspend(t.reseller1, vps, reason="abuse report #42")
    notice = Notice.objects.get(recipient=t.customer1, event="vps.suspended")
    assert "customer1-vps" in notice.title and notice.body == "Reason: abuse report #42"
    services.unsuspend(t.reseller1, vps, then_start=False)
    assert Notice.objects.filter(recipient=t.customer1, event="vps.unsuspended").count() == 1
    assert [(e, p.get("reason")) for e, p in sent(hook)] == [("vps.suspended", "abuse report #42"),
                                                             ("vps.unsuspended", None)]

    with pytest.raises(RuntimeError), transaction.atomic():
        services.suspend(t.reseller1, vps, reason="undone")
        raise RuntimeError("the deciding transaction fails after the suspension")
    assert not Notice.objects.filter(body="Reason: undone").exists()
    assert len(sent(hook)) == 2


def test_a_plan_change_is_posted_with_both_plans(world):  # noqa: F811
    t, plan, vpss = world
    bigger = plans.create_plan(t.admin, name="bigger", ram=plan.ram * 2, ipv4_count=1, ipv6_count=1)
    hook = notify.create_webhook(t.admin, name="all", url="https://hooks.example/a", events=["vps.plan_changed"])
    services.change_plan(t.customer1, vpss["customer1"], bigger)
    [(event, payload)] = sent(hook)
    assert event == "vps.plan_changed"
    assert (payload["plan"], payload["previous_plan"], payload["ctid"]) == ("bigger", "small",
                                                                           vpss["customer1"].ctid)
