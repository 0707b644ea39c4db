"""The one way the panel talks to nodes: a signed protocol message, sent after commit."""

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from panel.celery import app
from panel.core.choices import OperationStatus
from panel.core.models import Operation
from worker import protocol

log = logging.getLogger(__name__)


def dispatch(operation: Operation, request: protocol.Request) -> None:
    """Send `request` to the operation's node once the current transaction commits.

    The operation id is the Celery task id, so a report or a redelivery can
    always be matched to its row.
    """
    if request.operation_id != str(operation.id) or request.node != operation.node_name:
        raise ValueError("request does not belong to this operation")
    body = request.to_dict()
    transaction.on_commit(lambda: _send(operation.pk, request.task, body))


def _send(operation_id: Any, task: str, body: dict[str, Any]) -> None:
    try:
        app.send_task(
            task,
            args=[body],
            task_id=str(operation_id),
            queue=protocol.node_queue(body["node"]),
        )
    except Exception as exc:  # the broker is down or refused: the operation ends here, visibly
        log.exception("could not send %s %s", task, operation_id)
        Operation.objects.filter(pk=operation_id, status=OperationStatus.PENDING).update(
            status=OperationStatus.FAILED, finished_at=timezone.now(), error_code=protocol.ErrorCode.PANEL_BROKER,
            error_message=f"{protocol.ErrorCode.MESSAGES[protocol.ErrorCode.PANEL_BROKER]} ({type(exc).__name__})",
            updated=timezone.now(),
        )
        return
    Operation.objects.filter(pk=operation_id, status=OperationStatus.PENDING).update(
        status=OperationStatus.DISPATCHED, dispatched_at=timezone.now(), updated=timezone.now()
    )
