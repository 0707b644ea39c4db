"""Panel worker tasks of the usage app (queue `panel`)."""

import logging
from typing import Any

from celery import shared_task

from panel.usage import alerts, ingest, rollups, traffic
from panel.usage.models import Rollup
from worker import protocol

log = logging.getLogger(__name__)

TASK_ROLLUP = "panel.usage_rollup"
TASK_HOUSEKEEPING = "panel.usage_housekeeping"


# Verified once, in the pool child (panel/core/signing.py).
@shared_task(name=protocol.TASK_USAGE_BATCH, ignore_result=True, acks_late=True,
             Strategy="panel.core.signing:deferred_decode")
def usage_batch(body: Any) -> int:
    try:
        batch = protocol.UsageBatch.from_dict(body)
    except protocol.ProtocolError as exc:
        log.error("refused a usage batch: %s", exc)
        return 0
    return ingest.ingest(batch)


@shared_task(name=TASK_ROLLUP, ignore_result=True)
def rollup() -> None:
    rollups.rollup(Rollup.FIVE_MINUTES)
    rollups.rollup(Rollup.HOUR)


@shared_task(name=TASK_HOUSEKEEPING, ignore_result=True)
def housekeeping() -> None:
    deleted = rollups.expire()
    lifted = traffic.lift_throttles()
    told = alerts.notify_repeated_failcnt()
    log.info("usage housekeeping: deleted %s, throttles lifted %d, failcnt notices %d", deleted, lifted, told)
