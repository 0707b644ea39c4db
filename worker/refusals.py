"""Report refused messages to the panel instead of dropping them silently.

Celery's consumer logs and discards a message it cannot verify (unsigned,
signed by an unknown key, or altered). This consumer also tells the panel,
signed with the node's key, so the operation fails with a reason instead
of staying "sent" forever. Only the message's id is taken from it; nothing
of the refused body is trusted or executed.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from celery.worker.consumer import Consumer

from worker import protocol

log = logging.getLogger(__name__)
# The content type of Celery's `auth` (signing) serializer.
SIGNED_CONTENT_TYPE = "application/data"
_TASK_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class NodeConsumer(Consumer):
    def on_decode_error(self, message: Any, exc: Exception) -> None:
        super().on_decode_error(message, exc)
        report_refusal(message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        super().on_invalid_task(body, message, exc)
        report_refusal(message, exc)


def report_refusal(message: Any, exc: Exception) -> None:
    from worker.tasks import config, send_report

    headers = message.headers if isinstance(getattr(message, "headers", None), dict) else {}
    task_id = str(headers.get("id", ""))
    if not _TASK_ID.match(task_id):
        log.warning("refused a message without a usable task id: %s", exc)
        return
    content_type = getattr(message, "content_type", "")
    if content_type == SIGNED_CONTENT_TYPE:
        why = "its signature did not verify (unknown signer, or altered after signing)"
    else:
        why = f"it was not signed (content type {content_type!r})"
    error = protocol.UntrustedMessage(f"refused message {task_id}: {why}")
    try:
        send_report(protocol.Report(
            operation_id=task_id, node=config.name, status=protocol.Status.FAILED,
            error_code=error.code, message=str(error),
        ))
    except Exception:
        log.exception("could not report the refusal of %s", task_id)
