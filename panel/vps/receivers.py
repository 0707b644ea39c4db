"""Apply what nodes report about VPS operations to the VPS rows."""

from __future__ import annotations

import logging

from django.utils import timezone

from panel.core.models import Operation
from panel.plans import budgets
from panel.vps import addresses, events
from panel.vps.choices import VpsState
from panel.vps.models import VPS
from worker import protocol

log = logging.getLogger(__name__)

_FROM_NODE = {
    protocol.VpsState.RUNNING: VpsState.RUNNING,
    protocol.VpsState.STOPPED: VpsState.STOPPED,
    protocol.VpsState.PAUSED: VpsState.PAUSED,
    protocol.VpsState.ABSENT: VpsState.DESTROYED,
}


def on_operation_reported(sender: type, operation: Operation, **kwargs: object) -> None:
    if operation.target_type != "vps" or not operation.is_terminal:
        return
    vps = VPS.objects.select_for_update().filter(ctid=int(operation.target_id)).first()
    if vps is None:
        log.warning("report for unknown VPS %s (operation %s)", operation.target_id, operation.pk)
        return
    was_creating = vps.state == VpsState.CREATING
    if operation.status == protocol.Status.SUCCEEDED:
        state = _FROM_NODE.get(operation.result.get("state"))
        if state is None:
            log.error("operation %s reported no usable VPS state: %r", operation.pk, operation.result)
            return
        _set_state(vps, state, operation.result.get("init_pid"))
    elif vps.state == VpsState.CREATING:
        # The node undid the half-made VPS: it never existed, its budget share is free again.
        _set_state(vps, VpsState.DESTROYED, None)
    events.operation_finished(vps, operation, was_creating=was_creating)


def _set_state(vps: VPS, state: str, init_pid: int | None) -> None:
    if (vps.state, vps.init_pid) != (state, init_pid):
        vps.state, vps.init_pid, vps.state_changed = state, init_pid, timezone.now()
        vps.save(update_fields=["state", "init_pid", "state_changed", "updated"])
    if state == VpsState.DESTROYED:
        budgets.release(vps.budget_holder)
        addresses.release(vps)
