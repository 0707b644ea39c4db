"""How a node task runs an operation: decode, check, journal, work, report.

Every node task is `execute(task, RequestClass, body, work)`. The journal
(worker/journal.py) decides whether this delivery runs; `work` gets an
`OperationContext` to report progress (which also renews the lease) and
returns the facts of a successful run. Exactly one final report per
operation reaches the panel queue per delivery that does not run twice.

Progress goes out only once an operation has run `PROGRESS_DELAY`: one that
ends sooner sends just its final report. Every report costs a journal write
and a signature here and a locked row update on the panel, and a VPS start
is over in ~0.1 s (1-2 s with 20 at once on two cores): its "start" report
doubled the panel's work per start.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from worker import protocol
from worker.journal import Journal, Verdict

log = logging.getLogger(__name__)

# Seconds an operation runs before its progress is reported: longer than a VPS start takes with 20 at once.
PROGRESS_DELAY = 2.0


@dataclass
class OperationContext:
    request: protocol.Request
    journal: Journal
    send: Callable[[protocol.Report], None]
    node: str
    delivery: int = 1  # >1: an earlier run of this operation died mid-way (the journal counts)
    progress_delay: float = PROGRESS_DELAY
    _started: float = field(default_factory=time.monotonic)
    _pending: protocol.Report | None = None  # the latest progress not sent yet
    _timer: threading.Timer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)  # one report at a time; none after `close`
    _closed: bool = False

    def progress(self, stage: str, percent: int) -> None:
        """Tell the panel where the operation is; keeps this run's lease alive. Before `progress_delay`
        is up the report waits for it (the latest one of that time goes out then, if still running)."""
        report = protocol.Report(operation_id=self.request.operation_id, node=self.node,
                                 status=protocol.Status.RUNNING, stage=stage, percent=max(0, min(100, percent)))
        with self._lock:
            if self._closed:
                return
            self._pending = report
            wait = self._started + self.progress_delay - time.monotonic()
            if wait <= 0:
                self._send_pending()
            elif self._timer is None:
                self._timer = threading.Timer(wait, self._send_late)
                self._timer.daemon = True
                self._timer.start()

    def _send_late(self) -> None:
        with self._lock:
            if not self._closed:
                self._send_pending()

    def _send_pending(self) -> None:
        report, self._pending = self._pending, None
        if report is not None:
            self.journal.renew(self.request.operation_id)
            self.send(report)

    def close(self) -> None:
        """The work ended: progress held back is dropped, and a report being sent is out before this returns."""
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()


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
    progress_delay: float = PROGRESS_DELAY,
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
                                   delivery=entry.deliveries, progress_delay=progress_delay)
        try:
            facts = work(context)
        except Exception as exc:
            log.exception("%s %s failed", task_name, task_id)
            report = failure(task_id, node, exc)
        else:
            report = protocol.Report(operation_id=task_id, node=node, status=protocol.Status.SUCCEEDED,
                                     facts=facts, percent=100)
        finally:
            context.close()
    report = dataclasses.replace(report, duration_ms=int((time.monotonic() - started) * 1000))
    if entry.deliveries > 1:
        report = dataclasses.replace(report, log=[*report.log, f"delivery {entry.deliveries} of at most "
                                                  f"{journal.max_deliveries}: an earlier run did not finish"])
    journal.finish(task_id, report.to_dict())
    send(report)
    return report
