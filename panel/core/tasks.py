"""Panel worker tasks (queue `panel`)."""

import logging
from typing import Any

from celery import shared_task

from panel.core import services
from panel.core.audit.services import change_context
from worker import protocol

log = logging.getLogger(__name__)


@shared_task(name=protocol.TASK_APPLY_REPORT, acks_late=True)
def apply_report(body: Any) -> None:
    try:
        report = protocol.Report.from_dict(body)
    except protocol.ProtocolError as exc:
        log.error("refused a report: %s", exc)
        return
    with change_context(source=f"node:{report.node}"):
        services.apply_report(report)


@shared_task(name="panel.sweep_operations", ignore_result=True)
def sweep_operations() -> None:
    services.sweep_stale_operations()
