"""VPS actions: checked here, recorded as an Operation, sent to the node after commit.

Every request carries the VPS's whole desired state (`build_request`), never a
delta. The node's report comes back through `receivers.on_operation_reported`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from panel.core.dispatch import dispatch
from panel.core.models import Operation
from panel.core.permissions import CHANGE, is_admin
from panel.core.redaction import redact
from panel.core.services import create_operation
from panel.nodes.choices import NodeState
from panel.nodes.models import Node
from panel.plans import budgets
from panel.plans.models import Plan
from panel.plans.services import plan_limits
from panel.vps import addresses, events, placement, secrets
from panel.vps.choices import DesiredState, VpsState
from panel.vps.models import VPS, next_ctid
from panel.vps.validators import validate_hostname, validate_template_name
from worker import protocol


def build_request(vps: VPS, task: str, operation: Operation, *, fast: bool = False,
                  root_password_hash: str = "", **data: Any) -> protocol.VpsRequest:
    """The whole desired state; `root_password_hash` only in the operation that sets the password,
    `data` (snapshot, backup, keep) only in the data tasks (panel/vps/data.py)."""
    ipv4, ipv6 = addresses.cidrs(vps)
    version, checksum = placement.template_info(vps.node, vps.template)  # the node refuses another copy
    return protocol.VpsRequest(
        task=task, node=vps.node.name, operation_id=str(operation.id), ctid=vps.ctid, hostname=vps.hostname,
        template=vps.template, template_version=version, template_checksum=checksum,
        limits=protocol.check_limits(vps.limits), onboot=vps.onboot, fast=fast,
        ipv4=ipv4, ipv6=ipv6, nameservers=list(settings.CTPANEL_VPS_NAMESERVERS), ssh_keys=list(vps.ssh_keys),
        root_password_hash=root_password_hash,
        ugid_quotas=ugid_quotas(vps), **data,
    )


def ugid_quotas(vps: VPS) -> list[dict[str, Any]]:
    """The second-level quotas a request carries (panel/vps/quotas.py): the stored list, cut to what the
    limits allow now (after a plan change to a smaller quotaugidlimit the lowest ids of each kind keep theirs)."""
    limit = vps.limits.get("quotaugidlimit", 0)
    kept: list[dict[str, Any]] = []
    for kind in protocol.UGID_KINDS:
        kept += sorted((q for q in vps.ugid_quotas if q["kind"] == kind), key=lambda q: q["id"])[:limit]
    return kept


def _send(actor: Any, vps: VPS, task: str, **options: Any) -> Operation:
    op = create_operation(action=task, node_name=vps.node.name, user=actor, target_type="vps",
                          target_id=str(vps.ctid))
    request = build_request(vps, task, op, **options)
    op.payload = redact({k: v for k, v in request.to_dict().items() if k not in ("schema", "operation_id")})
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
    actor: Any, *, customer: Any, node: Node | None = None, template: str, hostname: str, plan: Plan | None = None,
    limits: dict[str, int] | None = None, start: bool = True, ssh_keys: list[str] | None = None,
) -> tuple[VPS, Operation]:
    """Create a VPS for `customer` on `node` (chosen by `placement` when None), started unless `start` is False.

    The plan's IP addresses are allocated from the node's pools in the same
    transaction as the VPS and its budget share.
    """
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
    desired_limits = plan_limits(plan) if plan is not None else protocol.check_limits(limits or {})
    keys = secrets.validate_ssh_keys(ssh_keys or [])
    if node is None:
        node = placement.choose_node(template, desired_limits.get("ram", 0), desired_limits.get("diskspace", 0))
    if node.state == NodeState.DISABLED:
        raise ValidationError({"node": f"Node {node.name} is disabled."})
    with transaction.atomic():
        vps = VPS.objects.create(
            ctid=next_ctid(), node=node, customer=customer, plan=plan, hostname=hostname, template=template,
            limits=desired_limits, desired_state=DesiredState.RUNNING if start else DesiredState.STOPPED,
            ssh_keys=keys,
        )
        if plan is not None:
            budgets.reserve(customer, vps.budget_holder, budgets.Demand.for_plan(plan))
        addresses.allocate(vps, plan)
        op = _send(actor, vps, protocol.TASK_VPS_START if start else protocol.TASK_VPS_CREATE)
    return vps, op


def _checked(actor: Any, vps: VPS, *, allowed: tuple[str, ...] | None = None, runs: bool = False) -> VPS:
    """`runs`: the action would make the VPS run, which nobody may while it is suspended.

    `actor` None is the panel itself (periodic jobs such as traffic quotas): no permission check.
    """
    if actor is not None and not VPS.objects.can(actor, CHANGE, vps):
        raise PermissionDenied("You may not change this VPS.")
    if vps.state == VpsState.DESTROYED:
        raise ValidationError("This VPS has been destroyed.")
    if vps.suspended and (runs or not _is_staff_for(actor, vps)):
        raise PermissionDenied(f"This VPS is suspended: {vps.suspend_reason or 'ask your provider'}.")
    if allowed is not None and vps.state not in allowed:
        raise ValidationError(f"This VPS is {vps.get_state_display().lower()}; that is not possible now.")
    return vps


def _set_desired(vps: VPS, desired: str) -> None:
    if vps.desired_state != desired:
        vps.desired_state = desired
        vps.save(update_fields=["desired_state", "updated"])


@transaction.atomic
def start(actor: Any, vps: VPS) -> Operation:
    _set_desired(_checked(actor, vps, runs=True), DesiredState.RUNNING)
    return _send(actor, vps, protocol.TASK_VPS_START)


@transaction.atomic
def stop(actor: Any, vps: VPS, *, fast: bool = False) -> Operation:
    _set_desired(_checked(actor, vps), DesiredState.STOPPED)
    return _send(actor, vps, protocol.TASK_VPS_STOP, fast=fast)


@transaction.atomic
def restart(actor: Any, vps: VPS) -> Operation:
    _set_desired(_checked(actor, vps, runs=True), DesiredState.RUNNING)
    return _send(actor, vps, protocol.TASK_VPS_RESTART)


@transaction.atomic
def pause(actor: Any, vps: VPS) -> Operation:
    _checked(actor, vps, allowed=(VpsState.RUNNING,))
    return _send(actor, vps, protocol.TASK_VPS_PAUSE)


@transaction.atomic
def resume(actor: Any, vps: VPS) -> Operation:
    _checked(actor, vps, allowed=(VpsState.PAUSED,), runs=True)
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


def _is_staff_for(actor: Any, vps: VPS) -> bool:
    """Admins, the reseller of the VPS's customer and the panel itself: they suspend, and act on suspended VPSs."""
    if actor is None or is_admin(actor):
        return True
    return getattr(actor, "is_reseller", False) and vps.customer.owner_id == actor.pk


@transaction.atomic
def change_plan(actor: Any, vps: VPS, plan: Plan) -> Operation:
    """Live resize: the budget share is reserved anew, addresses follow the plan, the node gets the new limits."""
    _checked(actor, vps)
    if not Plan.objects.restrict(vps.customer).filter(pk=plan.pk).exists():
        raise ValidationError({"plan": "This plan is not available to the customer."})
    budgets.reserve(vps.customer, vps.budget_holder, budgets.Demand.for_plan(plan))
    old_plan = vps.plan.name if vps.plan else ""
    vps.plan, vps.limits = plan, plan_limits(plan)
    vps.save(update_fields=["plan", "limits", "updated"])
    addresses.match_plan(vps, plan)
    events.plan_changed(vps, old_plan)
    return _send(actor, vps, protocol.TASK_VPS_SET)


@transaction.atomic
def set_limits(actor: Any, vps: VPS, **limits: int) -> Operation:
    """Change some limits (e.g. the rates when traffic is over quota) and send them to the node."""
    _checked(actor, vps)
    vps.limits = protocol.check_limits({**vps.limits, **limits})
    vps.save(update_fields=["limits", "updated"])
    return _send(actor, vps, protocol.TASK_VPS_SET)


@transaction.atomic
def suspend(actor: Any, vps: VPS, reason: str = "") -> Operation:
    """Stop the VPS and lock it against its customer (admins, and the customer's reseller)."""
    _checked(actor, vps)
    if not _is_staff_for(actor, vps):
        raise PermissionDenied("Only an admin or the customer's reseller suspends a VPS.")
    vps.suspended, vps.suspend_reason = True, reason.strip()[:200]
    vps.desired_state = DesiredState.STOPPED
    vps.save(update_fields=["suspended", "suspend_reason", "desired_state", "updated"])
    events.suspended(vps, vps.suspend_reason)
    return _send(actor, vps, protocol.TASK_VPS_STOP)


@transaction.atomic
def unsuspend(actor: Any, vps: VPS, *, then_start: bool = True) -> Operation | None:
    """Lift a suspension; the VPS starts again unless `then_start` is False."""
    _checked(actor, vps)
    if not _is_staff_for(actor, vps):
        raise PermissionDenied("Only an admin or the customer's reseller lifts a suspension.")
    vps.suspended, vps.suspend_reason = False, ""
    vps.save(update_fields=["suspended", "suspend_reason", "updated"])
    events.unsuspended(vps)
    return start(actor, vps) if then_start else None


@transaction.atomic
def set_root_password(actor: Any, vps: VPS, password: str) -> Operation:
    """Send root's password to the node as a SHA-512 crypt hash; neither it nor the hash is stored."""
    _checked(actor, vps)
    return _send(actor, vps, protocol.TASK_VPS_SET, root_password_hash=secrets.crypt_sha512(password))


@transaction.atomic
def set_ssh_keys(actor: Any, vps: VPS, keys: list[str]) -> Operation:
    """Replace root's authorized keys (validated OpenSSH public keys, one per line)."""
    _checked(actor, vps)
    vps.ssh_keys = secrets.validate_ssh_keys(keys)
    vps.save(update_fields=["ssh_keys", "updated"])
    return _send(actor, vps, protocol.TASK_VPS_SET)
