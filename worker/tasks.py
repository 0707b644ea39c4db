"""Node tasks. Each: decode the signed body, check it was meant for this
node and task, do the work, send one report to the panel queue."""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import time
from collections.abc import Callable
from typing import Any

from worker import protocol
from worker.celery_app import app, config

log = logging.getLogger(__name__)


def send_report(report: protocol.Report) -> None:
    app.send_task(protocol.TASK_APPLY_REPORT, args=[report.to_dict()], queue=config.panel_queue)


def execute(
    task: Any,
    request_cls: type[protocol.Request],
    body: Any,
    work: Callable[[protocol.Request], dict[str, Any]],
) -> protocol.Report:
    """Run `work` for a request body and report the outcome to the panel."""
    started = time.monotonic()
    operation_id = str(task.request.id)
    try:
        request = request_cls.from_dict(body)
        request.check_delivery(task=task.name, node=config.name, task_id=operation_id)
        facts = work(request)
    except protocol.ProtocolError as exc:
        log.error("refused %s %s: %s", task.name, operation_id, exc)
        report = protocol.Report(
            operation_id=operation_id, node=config.name, status=protocol.Status.FAILED,
            error_code=exc.code, message=str(exc),
        )
    except Exception as exc:
        log.exception("%s %s failed", task.name, operation_id)
        report = protocol.Report(
            operation_id=operation_id, node=config.name, status=protocol.Status.FAILED,
            error_code=getattr(exc, "code", protocol.ErrorCode.INTERNAL), message=str(exc),
        )
    else:
        report = protocol.Report(
            operation_id=operation_id, node=config.name, status=protocol.Status.SUCCEEDED,
            facts=facts,
        )
    report = dataclasses.replace(report, duration_ms=_ms_since(started))
    send_report(report)
    return report


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _ping(request: protocol.Request) -> dict[str, Any]:
    uname = platform.uname()
    return {"kernel": uname.release, "machine": uname.machine, "pid": os.getpid()}


@app.task(name=protocol.TASK_PING, bind=True, acks_late=True)
def ping(self: Any, body: Any) -> None:
    execute(self, protocol.PingRequest, body, _ping)
