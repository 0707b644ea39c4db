"""A VPS's data: reinstall, snapshots and backups (protocol 1.1's data tasks).

The node is the source of truth for what exists: every data task's report
lists the VPS's snapshots and backups (`facts["snapshots"]`, `["backups"]`),
and `on_operation_reported` makes the `Snapshot` and `Backup` rows match.

Limits: a VPS keeps at most its plan's `backup_slots` backups (a VPS without a
plan: `DEFAULT_BACKUP_SLOTS`) and `MAX_SNAPSHOTS` snapshots. Running creates
count against them, so two quick requests cannot both take the last slot (the
VPS row is locked while counting). The node also keeps at most `keep` backups.

Reinstall, rollback and restore end with the VPS running (its desired state
becomes running), like a fresh create.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from panel.core.choices import OperationStatus
from panel.core.models import Operation
from panel.core.notify import services as notify
from panel.core.notify.choices import NoticeLevel
from panel.vps import placement, secrets, services
from panel.vps.choices import DesiredState, VpsState
from panel.vps.models import VPS, Backup, Snapshot
from panel.vps.validators import validate_template_name
from worker import protocol

log = logging.getLogger(__name__)

MAX_SNAPSHOTS = 3
DEFAULT_BACKUP_SLOTS = 1
RESERVED_PREFIX = "backup-"  # the node's own temporary snapshots while it takes a backup


def backup_slots(vps: VPS) -> int:
    return vps.plan.backup_slots if vps.plan is not None else DEFAULT_BACKUP_SLOTS


# A VPS the node has made (not one still being created, or destroyed).
MADE = (VpsState.RUNNING, VpsState.STOPPED, VpsState.PAUSED, VpsState.ERROR)


def _locked(actor: Any, vps: VPS, *, runs: bool = False) -> VPS:
    """The VPS row, locked for this transaction, after the usual checks (permission, destroyed, suspended,
    made on its node)."""
    vps = VPS.objects.select_for_update(of=("self",)).select_related("node", "plan", "customer").get(pk=vps.pk)
    return services._checked(actor, vps, runs=runs, allowed=MADE)


def _running(vps: VPS, task: str) -> int:
    return Operation.objects.filter(target_type="vps", target_id=str(vps.ctid), action=task).exclude(
        status__in=OperationStatus.terminal()).count()


def _start_after(vps: VPS) -> None:
    if vps.desired_state != DesiredState.RUNNING:
        vps.desired_state = DesiredState.RUNNING
        vps.save(update_fields=["desired_state", "updated"])


# -- reinstall -------------------------------------------------------------------------------------
@transaction.atomic
def reinstall(actor: Any, vps: VPS, *, template: str, password: str = "",
              ssh_keys: list[str] | None = None) -> Operation:
    """A new root filesystem from `template`; CTID, addresses and limits stay. Root gets `password`
    (sent as a crypt hash only) and/or `ssh_keys` (None: the VPS's current keys); one of them is needed."""
    vps = _locked(actor, vps, runs=True)
    validate_template_name(template)
    if not placement.has_template(vps.node, template):
        raise ValidationError({"template": f"Node {vps.node.name} does not have the template {template}."})
    keys = secrets.validate_ssh_keys(ssh_keys) if ssh_keys is not None else list(vps.ssh_keys)
    if not password and not keys:
        raise ValidationError({"password": "Give root a new password or an SSH key, or nobody can log in."})
    password_hash = secrets.crypt_sha512(password) if password else ""
    vps.template, vps.ssh_keys = template, keys
    vps.save(update_fields=["template", "ssh_keys", "updated"])
    _start_after(vps)
    return services._send(actor, vps, protocol.TASK_VPS_REINSTALL, root_password_hash=password_hash)


# -- snapshots -------------------------------------------------------------------------------------
def snapshot_name(now: datetime.datetime | None = None) -> str:
    return (now or timezone.now()).strftime("snap-%Y%m%d-%H%M%S")


def _check_snapshot_name(name: str) -> str:
    if not protocol.SNAPSHOT_NAME_RE.match(name) or name.startswith(RESERVED_PREFIX):
        raise ValidationError({"name": "Snapshot names are 1-64 letters, digits, '.', '_' or '-', starting with a "
                                       f"letter or digit, and not starting with {RESERVED_PREFIX!r}."})
    return name


@transaction.atomic
def create_snapshot(actor: Any, vps: VPS, name: str = "") -> Operation:
    vps = _locked(actor, vps)
    name = _check_snapshot_name(name or snapshot_name())
    if vps.snapshots.filter(name=name).exists():
        raise ValidationError({"name": f"This VPS has a snapshot {name} already."})
    if vps.snapshots.count() + _running(vps, protocol.TASK_VPS_SNAPSHOT) >= MAX_SNAPSHOTS:
        raise ValidationError(f"A VPS keeps at most {MAX_SNAPSHOTS} snapshots; delete one first.")
    return services._send(actor, vps, protocol.TASK_VPS_SNAPSHOT, snapshot=name)


def rollback_snapshot(actor: Any, vps: VPS, name: str) -> Operation:
    """Stop the VPS, make its disk what it was at the snapshot, start it."""
    return _on_one(actor, vps, protocol.TASK_VPS_ROLLBACK, runs=True, snapshot=name)


def delete_snapshot(actor: Any, vps: VPS, name: str) -> Operation:
    return _on_one(actor, vps, protocol.TASK_VPS_SNAPSHOT_DELETE, snapshot=name)


# -- backups ---------------------------------------------------------------------------------------
@transaction.atomic
def create_backup(actor: Any, vps: VPS) -> Operation:
    """A backup into the node's backup directory, if the plan's backup slots have room."""
    vps = _locked(actor, vps)
    slots = backup_slots(vps)
    if slots < 1:
        raise ValidationError("This VPS's plan has no backup slots.")
    if vps.backups.count() + _running(vps, protocol.TASK_VPS_BACKUP) >= slots:
        raise ValidationError(f"All {slots} backup slots of this VPS are in use; delete a backup first.")
    return services._send(actor, vps, protocol.TASK_VPS_BACKUP, keep=slots)


def restore_backup(actor: Any, vps: VPS, backup_id: str) -> Operation:
    """Stop the VPS, replace its disk with the backup's, start it."""
    return _on_one(actor, vps, protocol.TASK_VPS_RESTORE, runs=True, backup=backup_id)


def delete_backup(actor: Any, vps: VPS, backup_id: str) -> Operation:
    return _on_one(actor, vps, protocol.TASK_VPS_BACKUP_DELETE, backup=backup_id)


@transaction.atomic
def _on_one(actor: Any, vps: VPS, task: str, *, runs: bool = False, snapshot: str = "",
            backup: str = "") -> Operation:
    """An action on one snapshot or backup the VPS has; `runs`: the VPS is started afterwards."""
    vps = _locked(actor, vps, runs=runs)
    if snapshot and not vps.snapshots.filter(name=snapshot).exists():
        raise ValidationError({"name": f"This VPS has no snapshot {snapshot}."})
    if backup and not vps.backups.filter(backup_id=backup).exists():
        raise ValidationError({"backup": f"This VPS has no backup {backup}."})
    if runs:
        _start_after(vps)
    data = {"snapshot": snapshot} if snapshot else {"backup": backup}
    return services._send(actor, vps, task, **data)


# -- what the node reports -------------------------------------------------------------------------
def _when(value: Any) -> datetime.datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return datetime.datetime.fromtimestamp(value, tz=datetime.UTC)


def sync(vps: VPS, facts: dict[str, Any]) -> None:
    """Make the VPS's Snapshot and Backup rows what the node listed (keys it did not send are left alone)."""
    if isinstance(facts.get("snapshots"), list):
        wanted = {s["name"]: _when(s.get("created")) for s in facts["snapshots"]
                  if isinstance(s, dict) and isinstance(s.get("name"), str) and _when(s.get("created"))}
        vps.snapshots.exclude(name__in=wanted).delete()
        have = set(vps.snapshots.values_list("name", flat=True))
        Snapshot.objects.bulk_create(Snapshot(vps=vps, name=n, created=c) for n, c in wanted.items() if n not in have)
    if isinstance(facts.get("backups"), list):
        wanted_b = {b["id"]: b for b in facts["backups"]
                    if isinstance(b, dict) and isinstance(b.get("id"), str) and _when(b.get("created"))}
        vps.backups.exclude(backup_id__in=wanted_b).delete()
        have = set(vps.backups.values_list("backup_id", flat=True))
        Backup.objects.bulk_create(
            Backup(vps=vps, backup_id=i, created=_when(b["created"]), size=int(b.get("size") or 0))
            for i, b in wanted_b.items() if i not in have)


def _tell_about_backup(vps: VPS, operation: Operation) -> None:
    """The customer hears of each finished (or failed) backup: a notice, and the webhook event."""
    if operation.status == protocol.Status.SUCCEEDED:
        notify.notify(vps.customer, "vps.backup_finished", f"VPS {vps.hostname}: backup finished",
                      f"The backup took {(operation.duration_ms or 0) / 1000:.1f} s.")
    else:
        notify.notify(vps.customer, "vps.backup_failed", f"VPS {vps.hostname}: backup failed",
                      operation.error_message, level=NoticeLevel.WARNING)
    notify.emit("vps.backup", {"ctid": vps.ctid, "operation": str(operation.pk), "status": operation.status},
                tenant=vps.customer)


def on_operation_reported(sender: type, operation: Operation, **kwargs: object) -> None:
    if operation.target_type != "vps" or not operation.is_terminal:
        return
    vps = VPS.objects.select_related("customer").filter(ctid=int(operation.target_id)).first()
    if vps is None:
        return
    if operation.action == protocol.TASK_VPS_BACKUP:
        _tell_about_backup(vps, operation)
    if operation.status != protocol.Status.SUCCEEDED:
        return
    if operation.result.get("state") == protocol.VpsState.ABSENT:
        vps.snapshots.all().delete()
        vps.backups.all().delete()
        return
    sync(vps, operation.result)
