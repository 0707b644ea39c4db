"""Node tasks: each one line of `execute` around the work it does."""

from __future__ import annotations

import logging
import os
import time
from functools import cache
from pathlib import Path
from typing import Any

from celery.signals import worker_init, worker_process_init, worker_ready

from kernel import host
from worker import protocol, reconcile, vps, vpsdata
from worker.celery_app import app, config
from worker.execution import OperationContext, execute
from worker.journal import Journal

log = logging.getLogger(__name__)


def send_report(report: protocol.Report) -> None:
    app.send_task(protocol.TASK_APPLY_REPORT, args=[report.to_dict()], queue=config.panel_queue)


@cache
def journal() -> Journal:
    return Journal(Path(config.state_root) / "journal.sqlite",
                   lease_seconds=float(os.environ.get("CTPANEL_LEASE_SECONDS", "120")))


def run(task: Any, request_cls: type[protocol.Request], body: Any, work: Any, abandon: Any = None
        ) -> protocol.Report | None:
    return execute(task_name=task.name, task_id=str(task.request.id), node=config.name, request_cls=request_cls,
                   body=body, work=work, journal=journal(), send=send_report, abandon=abandon)


def _ping(context: OperationContext) -> dict[str, Any]:
    delay = context.request.delay_ms / 1000
    if delay:
        context.progress("waiting", 0)
        time.sleep(delay)
    return {**host.facts(), "pid": os.getpid()}


@app.task(name=protocol.TASK_PING, bind=True, acks_late=True)
def ping(self: Any, body: Any) -> None:
    run(self, protocol.PingRequest, body, _ping)


def _inventory(context: OperationContext) -> dict[str, Any]:
    rt = vps.runtime(config)
    found = reconcile.inventory(rt)
    return {**found, "cleaned": reconcile.clean_orphans(rt) if context.request.clean else []}


@app.task(name=protocol.TASK_INVENTORY, bind=True, acks_late=True)
def inventory(self: Any, body: Any) -> None:
    run(self, protocol.InventoryRequest, body, _inventory)


@worker_init.connect
def _ready_the_node(**kwargs: Any) -> None:
    """Ready pools and network once, before the pool forks: each pool process inherits the
    runtime instead of readying the node again on its first task (an nft run and more each)."""
    try:
        vps.runtime(config)
    except Exception:
        log.exception("readying the node failed; the first task of each pool process will retry")


@worker_process_init.connect
def _connect_for_reports(**kwargs: Any) -> None:
    """A pool process connects to the broker for its reports as it starts, not in its first report:
    two Redis connections (each with redis-py's version lookup, a package metadata parse), a PING
    and the panel queue's declaration, ~10 ms of CPU that the first operation of each pool process
    after a worker start waited for (16 of 20 concurrent starts, bench/roundtrip.py)."""
    try:
        with app.producer_or_acquire() as producer:
            producer.maybe_declare(app.amqp.queues[config.panel_queue])
    except Exception:
        log.exception("connecting for reports failed; the first report will connect")


@worker_ready.connect
def _recover_at_start(**kwargs: Any) -> None:
    """Clean up after operations a previous worker left half-done (worker/reconcile.py)."""
    try:
        reconcile.recover(vps.runtime(config), journal())
    except Exception:
        log.exception("recovery at start failed; the next reconcile will retry")


def _vps_task(name: str) -> Any:
    @app.task(name=name, bind=True, acks_late=True)
    def task(self: Any, body: Any) -> None:
        run(self, protocol.VpsRequest, body, vpsdata.work(config), vps.abandon(config))

    return task


vps_tasks = {name: _vps_task(name) for name in protocol.VPS_TASKS}
