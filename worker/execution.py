"""How a node task runs an operation: decode, check, journal, work, report.

Every node task is `execute(task, RequestClass, body, work)`. The journal
(worker/journal.py) decides whether this delivery runs; `work` gets an
`OperationContext` to report progress (which also renews the lease) and
returns the facts of a successful run. Exactly one final report per
operation reaches the panel queue per delivery that does not run twice.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker import protocol
from worker.journal import Journal, Verdict

log = logging.getLogger(__name__)


@dataclass
class OperationContext:
    request: protocol.Request
    journal: Journal
    send: Callable[[protocol.Report], None]
    node: str
    delivery: int = 1  # >1: an earlier run of this operation died mid-way (the journal counts)

    def progress(self, stage: str, percent: int) -> None:
        """Tell the panel where the operation is; keeps this run's lease alive."""
        self.journal.renew(self.request.operation_id)
        self.send(protocol.Report(operation_id=self.request.operation_id, node=self.node,
                                  status=protocol.Status.RUNNING, stage=stage, percent=max(0, min(100, percent))))


def failure(operation_id: str, node: str, exc: BaseException) -> protocol.Report:
    return protocol.Report(
        operation_id=operation_id, node=node, status=protocol.Status.FAILED,
        error_code=getattr(exc, "code", protocol.ErrorCode.INTERNAL), message=str(exc),
    )


def execute(
    *,
    task_name: str,
    task_id: str,
    node: str,
    request_cls: type[protocol.Request],
    body: Any,
    work: Callable[[OperationContext], dict[str, Any]],
    journal: Journal,
    send: Callable[[protocol.Report], None],
    abandon: Callable[[protocol.Request], None] | None = None,
) -> protocol.Report | None:
    """Run one delivery of an operation; return the report sent (None when dropped as a duplicate).

    `abandon` undoes what the runs of an operation that is given up left behind."""
    started = time.monotonic()
    try:
        request = request_cls.from_dict(body)
        request.check_delivery(task=task_name, node=node, task_id=task_id)
    except protocol.ProtocolError as exc:
        log.error("refused %s %s: %s", task_name, task_id, exc)
        report = failure(task_id, node, exc)
        send(report)
        return report

    verdict, entry = journal.begin(task_id, task_name, body=body)
    if verdict == Verdict.DUPLICATE:
        log.warning("%s %s is running elsewhere (%s); this delivery is dropped", task_name, task_id, entry.lease_owner)
        return None
    if verdict == Verdict.FINISHED and entry.report is not None:
        report = protocol.Report.from_dict(entry.report)
        send(report)
        return report
    if verdict == Verdict.GIVE_UP:
        if abandon is not None:
            try:
                abandon(request)
            except Exception:
                log.exception("%s %s: undoing what its runs left failed", task_name, task_id)
        report = protocol.Report(
            operation_id=task_id, node=node, status=protocol.Status.FAILED, error_code=protocol.ErrorCode.GAVE_UP,
            message=f"given up after {entry.deliveries} deliveries: each run ended its worker process",
        )
    else:
        context = OperationContext(request=request, journal=journal, send=send, node=node,
                                   delivery=entry.deliveries)
        try:
            facts = work(context)
        except Exception as exc:
            log.exception("%s %s failed", task_name, task_id)
            report = failure(task_id, node, exc)
        else:
            report = protocol.Report(operation_id=task_id, node=node, status=protocol.Status.SUCCEEDED,
                                     facts=facts, percent=100)
    report = dataclasses.replace(report, duration_ms=int((time.monotonic() - started) * 1000))
    if entry.deliveries > 1:
        report = dataclasses.replace(report, log=[*report.log, f"delivery {entry.deliveries} of at most "
                                                  f"{journal.max_deliveries}: an earlier run did not finish"])
    journal.finish(task_id, report.to_dict())
    send(report)
    return report
