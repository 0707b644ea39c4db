"""VPS lifecycle events: the webhook events (and customer notices) of what happens to a VPS.

Two moments make events. What the node does is told when it reports the operation
finished, so `vps.started` means the VPS runs: one event per succeeded action, and
`vps.operation_failed` (with the action) for a failed one. What the panel decides —
suspension, its lifting, a plan change — is told when it is decided, inside the
deciding transaction: a rolled-back decision sends nothing (`notify.emit` queues the
deliveries after commit). Every payload carries `ctid`, `hostname` and `customer`
(the username); operation events add `operation`, `action` and `state`.
"""

from __future__ import annotations

from typing import Any

from panel.core.models import Operation
from panel.core.notify import services as notify
from panel.core.notify.choices import NoticeLevel
from panel.vps.models import VPS
from worker import protocol

#: The event of each succeeded node action (docs/panel-domain.md lists them).
DONE = {
    protocol.TASK_VPS_CREATE: "vps.created",
    protocol.TASK_VPS_START: "vps.started",
    protocol.TASK_VPS_STOP: "vps.stopped",
    protocol.TASK_VPS_RESTART: "vps.restarted",
    protocol.TASK_VPS_PAUSE: "vps.paused",
    protocol.TASK_VPS_RESUME: "vps.resumed",
    protocol.TASK_VPS_SET: "vps.changed",
    protocol.TASK_VPS_REINSTALL: "vps.reinstalled",
    protocol.TASK_VPS_RESTORE: "vps.restored",
    protocol.TASK_VPS_ROLLBACK: "vps.rolled_back",
    protocol.TASK_VPS_DESTROY: "vps.destroyed",
}
FAILED = "vps.operation_failed"


def _about(vps: VPS) -> dict[str, Any]:
    return {"ctid": vps.ctid, "hostname": vps.hostname, "customer": vps.customer.username}


def operation_finished(vps: VPS, operation: Operation, *, was_creating: bool = False) -> None:
    """The events of a finished node operation on `vps` (backups have their own, in data.py).

    A VPS is created by `create` or by a create-and-`start` (`was_creating`: the VPS was
    still being created): the latter sends `vps.created`, then `vps.started`."""
    action = DONE.get(operation.action)
    if action is None:
        return
    data = {**_about(vps), "operation": str(operation.pk), "action": operation.action.removeprefix("node.vps."),
            "state": vps.state}
    if operation.status != protocol.Status.SUCCEEDED:
        notify.emit(FAILED, {**data, "error": operation.error_message}, tenant=vps.customer)
        return
    if was_creating and action != DONE[protocol.TASK_VPS_CREATE]:
        notify.emit(DONE[protocol.TASK_VPS_CREATE], data, tenant=vps.customer)
    notify.emit(action, data, tenant=vps.customer)


def suspended(vps: VPS, reason: str) -> None:
    """The customer is told why; webhooks get `vps.suspended`."""
    notify.notify(vps.customer, "vps.suspended", f"VPS {vps.hostname} is suspended",
                  f"Reason: {reason}" if reason else "No reason was given; ask your provider.",
                  level=NoticeLevel.WARNING)
    notify.emit("vps.suspended", {**_about(vps), "reason": reason}, tenant=vps.customer)


def unsuspended(vps: VPS) -> None:
    notify.notify(vps.customer, "vps.unsuspended", f"VPS {vps.hostname} is no longer suspended")
    notify.emit("vps.unsuspended", _about(vps), tenant=vps.customer)


def plan_changed(vps: VPS, old_plan: str) -> None:
    notify.emit("vps.plan_changed", {**_about(vps), "plan": vps.plan.name, "previous_plan": old_plan},
                tenant=vps.customer)
