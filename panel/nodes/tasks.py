"""Panel worker tasks about nodes (queue `panel`)."""

import logging
from typing import Any

from celery import shared_task

from panel.nodes import services
from worker import protocol

log = logging.getLogger(__name__)

TASK_SWEEP_NODES = "panel.sweep_nodes"


@shared_task(name=protocol.TASK_NODE_HEARTBEAT, ignore_result=True)
def node_heartbeat(body: Any) -> None:
    try:
        heartbeat = protocol.Heartbeat.from_dict(body)
    except protocol.ProtocolError as exc:
        log.error("refused a heartbeat: %s", exc)
        return
    services.record_heartbeat(heartbeat)


@shared_task(name=TASK_SWEEP_NODES, ignore_result=True)
def sweep_nodes() -> None:
    services.sweep_down_nodes()
