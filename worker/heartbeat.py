"""The node's heartbeat: a consumer bootstep that reports every few seconds.

It runs on the worker's own timer, so a node that stops consuming also
stops heartbeating, and the panel's sweep marks it down.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery import bootsteps

from kernel import host
from worker import protocol, vps
from worker.config import NodeConfig

log = logging.getLogger(__name__)


def interval() -> int:
    return int(os.environ.get("CTPANEL_HEARTBEAT_SECONDS", protocol.HEARTBEAT_SECONDS))


def build(config: NodeConfig) -> protocol.Heartbeat:
    rt = vps.runtime(config)
    facts = {**host.facts(), "cgroup_version": rt.cgroups.version, "templates": rt.templates.names()}
    capacity = {**host.capacity().to_dict(), "vps_count": len(rt.registry.ctids())}
    return protocol.Heartbeat(node=config.name, sent_at=time.time(), interval=interval(), facts=facts,
                              capacity=capacity)


class HeartbeatStep(bootsteps.StartStopStep):
    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref = None

    def start(self, consumer: Any) -> None:
        self.send(consumer)
        self.timer_ref = consumer.timer.call_repeatedly(interval(), self.send, (consumer,), priority=10)

    def stop(self, consumer: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None

    def send(self, consumer: Any) -> None:
        from worker.celery_app import config

        try:
            consumer.app.send_task(protocol.TASK_NODE_HEARTBEAT, args=[build(config).to_dict()],
                                   queue=config.panel_queue)
        except Exception:
            log.exception("heartbeat not sent")
