"""VPS actions: checked here, recorded as an Operation, sent to the node after commit.

Every request carries the VPS's whole desired state (`build_request`), never a
delta. The node's report comes back through `receivers.on_operation_reported`.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from panel.core.dispatch import dispatch
from panel.core.models import Operation
from panel.core.permissions import CHANGE, is_admin
from panel.core.services import create_operation
from panel.nodes.choices import NodeState
from panel.nodes.models import Node
from panel.plans import budgets
from panel.plans.models import Plan
from panel.plans.services import plan_limits
from panel.vps.choices import DesiredState, VpsState
from panel.vps.models import VPS, next_ctid
from panel.vps.validators import validate_hostname, validate_template_name
from worker import protocol


def build_request(vps: VPS, task: str, operation: Operation, *, fast: bool = False) -> protocol.VpsRequest:
    return protocol.VpsRequest(
        task=task, node=vps.node.name, operation_id=str(operation.id), ctid=vps.ctid, hostname=vps.hostname,
        template=vps.template, limits=protocol.check_limits(vps.limits), onboot=vps.onboot, fast=fast,
    )


def _send(actor: Any, vps: VPS, task: str, **options: Any) -> Operation:
    op = create_operation(action=task, node_name=vps.node.name, user=actor, target_type="vps",
                          target_id=str(vps.ctid))
    request = build_request(vps, task, op, **options)
    op.payload = {k: v for k, v in request.to_dict().items() if k not in ("schema", "operation_id")}
    op.save(update_fields=["payload"])
    dispatch(op, request)
    return op


def _may_act_for(actor: Any, customer: Any) -> bool:
    if is_admin(actor):
        return True
    if getattr(actor, "is_reseller", False):
        return customer.owner_id == actor.pk
    return customer.pk == getattr(actor, "pk", None)


def create_vps(
    actor: Any, *, customer: Any, node: Node, template: str, hostname: str, plan: Plan | None = None,
    limits: dict[str, int] | None = None, start: bool = True,
) -> tuple[VPS, Operation]:
    """Create a VPS for `customer` on `node` (and start it unless `start` is False)."""
    if not getattr(customer, "is_customer", False):
        raise ValidationError({"customer": "VPSs belong to customers."})
    if not _may_act_for(actor, customer):
        raise PermissionDenied("You may not create VPSs for this customer.")
    validate_hostname(hostname)
    validate_template_name(template)
    if plan is None and not is_admin(actor):
        raise ValidationError({"plan": "Choose a plan."})
    if plan is not None and not Plan.objects.restrict(customer).filter(pk=plan.pk).exists():
        raise ValidationError({"plan": "This plan is not available to the customer."})
    if node.state == NodeState.DISABLED:
        raise ValidationError({"node": f"Node {node.name} is disabled."})
    desired_limits = plan_limits(plan) if plan is not None else protocol.check_limits(limits or {})
    with transaction.atomic():
        vps = VPS.objects.create(
            ctid=next_ctid(), node=node, customer=customer, plan=plan, hostname=hostname, template=template,
            limits=desired_limits, desired_state=DesiredState.RUNNING if start else DesiredState.STOPPED,
        )
        if plan is not None:
            budgets.reserve(customer, vps.budget_holder, budgets.Demand.for_plan(plan))
        op = _send(actor, vps, protocol.TASK_VPS_START if start else protocol.TASK_VPS_CREATE)
    return vps, op


def _checked(actor: Any, vps: VPS, *, allowed: tuple[str, ...] | None = None) -> VPS:
    if not VPS.objects.can(actor, CHANGE, vps):
        raise PermissionDenied("You may not change this VPS.")
    if vps.state == VpsState.DESTROYED:
        raise ValidationError("This VPS has been destroyed.")
    if allowed is not None and vps.state not in allowed:
        raise ValidationError(f"This VPS is {vps.get_state_display().lower()}; that is not possible now.")
    return vps


def _set_desired(vps: VPS, desired: str) -> None:
    if vps.desired_state != desired:
        vps.desired_state = desired
        vps.save(update_fields=["desired_state", "updated"])


@transaction.atomic
def start(actor: Any, vps: VPS) -> Operation:
    _set_desired(_checked(actor, vps), DesiredState.RUNNING)
    return _send(actor, vps, protocol.TASK_VPS_START)


@transaction.atomic
def stop(actor: Any, vps: VPS, *, fast: bool = False) -> Operation:
    _set_desired(_checked(actor, vps), DesiredState.STOPPED)
    return _send(actor, vps, protocol.TASK_VPS_STOP, fast=fast)


@transaction.atomic
def restart(actor: Any, vps: VPS) -> Operation:
    _set_desired(_checked(actor, vps), DesiredState.RUNNING)
    return _send(actor, vps, protocol.TASK_VPS_RESTART)


@transaction.atomic
def pause(actor: Any, vps: VPS) -> Operation:
    _checked(actor, vps, allowed=(VpsState.RUNNING,))
    return _send(actor, vps, protocol.TASK_VPS_PAUSE)


@transaction.atomic
def resume(actor: Any, vps: VPS) -> Operation:
    _checked(actor, vps, allowed=(VpsState.PAUSED,))
    return _send(actor, vps, protocol.TASK_VPS_RESUME)


@transaction.atomic
def set_hostname(actor: Any, vps: VPS, hostname: str) -> Operation:
    _checked(actor, vps)
    validate_hostname(hostname)
    vps.hostname = hostname
    vps.save(update_fields=["hostname", "updated"])
    return _send(actor, vps, protocol.TASK_VPS_SET)


@transaction.atomic
def destroy(actor: Any, vps: VPS) -> Operation:
    _set_desired(_checked(actor, vps), DesiredState.ABSENT)
    return _send(actor, vps, protocol.TASK_VPS_DESTROY)
