"""Operations: created as rows, dispatched after commit, finished by reports."""

import datetime
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from panel.core.choices import OperationStatus
from panel.core.middleware import current_request_id
from panel.core.models import Operation
from panel.core.redaction import redact
from panel.core.signals import operation_reported
from worker import protocol

log = logging.getLogger(__name__)


def create_operation(
    *, action: str, node_name: str, user: Any = None, target_type: str = "",
    target_id: str = "", payload: dict[str, Any] | None = None,
) -> Operation:
    return Operation.objects.create(
        action=action,
        node_name=protocol.validate_node_name(node_name),
        user=user if getattr(user, "is_authenticated", False) else None,
        target_type=target_type,
        target_id=str(target_id),
        request_id=current_request_id(),
        payload=redact(payload or {}),
    )


def apply_report(report: protocol.Report) -> Operation | None:
    """Apply a node's report to its operation exactly once.

    The row is locked; a terminal operation is never changed again, and a
    report from a node other than the operation's is ignored.
    """
    with transaction.atomic():
        op = Operation.objects.select_for_update().filter(pk=report.operation_id).first()
        if op is None:
            log.warning("report for unknown operation %s from %s", report.operation_id, report.node)
            return None
        if op.node_name != report.node:
            log.warning("report for %s from %s, but it belongs to %s", op.pk, report.node, op.node_name)
            return op
        if op.is_terminal:
            return op
        now = timezone.now()
        op.started_at = op.started_at or now
        op.status = report.status
        op.stage = report.stage or op.stage
        op.percent = report.percent
        if report.log:
            op.log = [*op.log, *report.log]
        if report.status in protocol.Status.TERMINAL:
            op.finished_at = now
            op.duration_ms = report.duration_ms
            op.result = redact(report.facts)
            op.error_code = report.error_code
            op.error_message = report.message
        op.save()
        operation_reported.send(sender=Operation, operation=op)
        return op


def sweep_stale_operations(now: Any = None) -> int:
    """Fail operations that no node has reported on for CTPANEL_OPERATION_STALE_SECONDS.

    A running operation's progress reports keep it fresh; one whose node died or
    whose message was lost would otherwise stay "sent" forever.
    """
    now = now or timezone.now()
    stale_after = datetime.timedelta(seconds=settings.CTPANEL_OPERATION_STALE_SECONDS)
    return Operation.objects.filter(
        status__in=[OperationStatus.PENDING, OperationStatus.DISPATCHED, OperationStatus.RUNNING],
        updated__lt=now - stale_after,
    ).update(
        status=OperationStatus.FAILED, finished_at=now, updated=now, error_code=protocol.ErrorCode.PANEL_STALE,
        error_message=protocol.ErrorCode.MESSAGES[protocol.ErrorCode.PANEL_STALE],
    )
