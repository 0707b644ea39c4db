"""The node's usage sampling: one `protocol.UsageBatch` every CTPANEL_USAGE_SECONDS (60).

A consumer bootstep on the worker's timer (like the heartbeat) reads every
VPS's counters in one pass of the cgroup files (kernel/ubc's fast tier:
beancounter rows, CPU time, memory, processes) and sends totals with their
epoch, never deltas; the ledger keeps the totals monotonic across cgroup
re-creation and worker restarts.
"""

from __future__ import annotations

import logging
import os
import time
from functools import cache
from typing import Any

from celery import bootsteps

from kernel.ubc.counters import FastReader, Ledger
from worker import protocol, vps
from worker.config import NodeConfig

log = logging.getLogger(__name__)


def interval() -> int:
    return int(os.environ.get("CTPANEL_USAGE_SECONDS", "60"))


@cache
def reader(config: NodeConfig) -> FastReader:
    return FastReader(vps.runtime(config).cgroups, Ledger.for_node(config.state_root))


def collect(config: NodeConfig) -> protocol.UsageBatch:
    """Every VPS of this node that has cgroups (running or recently stopped)."""
    fast = reader(config)
    known = set(vps.runtime(config).registry.ctids())
    samples = [sample.to_usage() for ctid, sample in sorted(fast.read_all().items()) if ctid in known]
    fast.ledger.forget(known)
    fast.ledger.save()
    return protocol.UsageBatch(node=config.name, sent_at=time.time(), interval=interval(), samples=samples)


class UsageStep(bootsteps.StartStopStep):
    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref = None

    def start(self, consumer: Any) -> None:
        self.timer_ref = consumer.timer.call_repeatedly(interval(), self.send, (consumer,), priority=20)

    def stop(self, consumer: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None

    def send(self, consumer: Any) -> None:
        from worker.celery_app import config

        try:
            batch = collect(config)
            consumer.app.send_task(protocol.TASK_USAGE_BATCH, args=[batch.to_dict()], queue=config.panel_queue)
        except Exception:
            log.exception("usage batch not sent")
