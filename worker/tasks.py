"""Node tasks: each one line of `execute` around the work it does."""

from __future__ import annotations

import os
import time
from functools import cache
from pathlib import Path
from typing import Any

from kernel import host
from worker import protocol, vps
from worker.celery_app import app, config
from worker.execution import OperationContext, execute
from worker.journal import Journal


def send_report(report: protocol.Report) -> None:
    app.send_task(protocol.TASK_APPLY_REPORT, args=[report.to_dict()], queue=config.panel_queue)


@cache
def journal() -> Journal:
    return Journal(Path(config.state_root) / "journal.sqlite",
                   lease_seconds=float(os.environ.get("CTPANEL_LEASE_SECONDS", "120")))


def run(task: Any, request_cls: type[protocol.Request], body: Any, work: Any) -> protocol.Report | None:
    return execute(task_name=task.name, task_id=str(task.request.id), node=config.name, request_cls=request_cls,
                   body=body, work=work, journal=journal(), send=send_report)


def _ping(context: OperationContext) -> dict[str, Any]:
    delay = context.request.delay_ms / 1000
    if delay:
        context.progress("waiting", 0)
        time.sleep(delay)
    return {**host.facts(), "pid": os.getpid()}


@app.task(name=protocol.TASK_PING, bind=True, acks_late=True)
def ping(self: Any, body: Any) -> None:
    run(self, protocol.PingRequest, body, _ping)


def _vps_task(name: str) -> Any:
    @app.task(name=name, bind=True, acks_late=True)
    def task(self: Any, body: Any) -> None:
        run(self, protocol.VpsRequest, body, vps.work(config))

    return task


vps_tasks = {name: _vps_task(name) for name in protocol.VPS_TASKS}
