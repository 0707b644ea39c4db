"""The node's Celery app (queue `node.<name>`). Imports no Django.

Start it with `celery -A worker.celery_app worker -Q node.<name>` and
`CTPANEL_ENV_FILE` pointing at the node env file. It executes only
messages signed by the panel's key (Celery's `auth` serializer; the trust
store holds the panel's certificate and nothing else) and signs its own
reports with the node's key.
"""

from __future__ import annotations

import os

from celery import Celery

from worker.config import NodeConfig
from worker.heartbeat import HeartbeatStep
from worker.usage import UsageStep

config = NodeConfig.from_env()

# No fixups: Celery would set Django up when DJANGO_SETTINGS_MODULE happens to be set.
app = Celery("ctpanel-node", fixups=[])
app.conf.update(
    broker_url=config.broker_url,
    broker_connection_retry_on_startup=True,
    # A task runs at most this long before Redis hands it out again; node
    # tasks are idempotent "ensure" operations, so a second run converges.
    # Messages of a worker killed mid-task come back once this expired; the
    # sweep that brings them back runs every CTPANEL_RESTORE_SECONDS.
    broker_transport_options={
        "visibility_timeout": int(os.environ.get("CTPANEL_VISIBILITY_TIMEOUT", "3600")),
        "unacked_restore_interval": int(os.environ.get("CTPANEL_RESTORE_SECONDS", "10")),
        "unacked_restore_throttle": 1,
    },
    task_serializer="auth",
    accept_content=["auth"],
    event_serializer="json",
    security_key=config.signing_key,
    security_certificate=config.signing_cert,
    security_cert_store=config.trusted_certs,
    security_digest="sha256",
    task_default_queue=config.queue,
    task_ignore_result=True,
    task_acks_late=False,
    # An acks_late task whose pool process dies goes back to the queue at once;
    # the journal bounds how often (Celery's own requeue is unbounded).
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_concurrency=config.concurrency,
    # Remote control messages are not signed: a node takes no orders but tasks.
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    worker_hijack_root_logger=False,
    worker_consumer="worker.refusals:NodeConsumer",
)
app.setup_security()
app.conf.include = ["worker.tasks"]
app.steps["consumer"].add(HeartbeatStep)
app.steps["consumer"].add(UsageStep)
