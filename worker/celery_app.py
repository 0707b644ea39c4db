"""The node's Celery app (queue `node.<name>`). Imports no Django.

Start it with `celery -A worker.celery_app worker -Q node.<name>` and
`CTPANEL_ENV_FILE` pointing at the node env file. It executes only
messages signed by the panel's key (Celery's `auth` serializer; the trust
store holds the panel's certificate and nothing else) and signs its own
reports with the node's key.
"""

from __future__ import annotations

from celery import Celery

from worker.config import NodeConfig
from worker.heartbeat import HeartbeatStep

config = NodeConfig.from_env()

app = Celery("ctpanel-node")
app.conf.update(
    broker_url=config.broker_url,
    broker_connection_retry_on_startup=True,
    # A task runs at most this long before Redis hands it out again; node
    # tasks are idempotent "ensure" operations, so a second run converges.
    broker_transport_options={"visibility_timeout": 3600},
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
    worker_prefetch_multiplier=1,
    # Remote control messages are not signed: a node takes no orders but tasks.
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    worker_hijack_root_logger=False,
    worker_consumer="worker.refusals:NodeConsumer",
)
app.setup_security()
app.conf.include = ["worker.tasks"]
app.steps["consumer"].add(HeartbeatStep)
