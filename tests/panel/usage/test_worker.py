"""A signed usage batch, through the broker, ingested by the real panel worker."""

from __future__ import annotations

import base64
import datetime
import time

import pytest
from celery import Celery
from django.db import connection
from kombu.serialization import dumps, registry

from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.celery import app as panel_app
from panel.core.signing import SIGNED_CONTENT_TYPE
from panel.nodes.models import Node
from panel.usage.models import FailEvent, Sample, TrafficPeriod
from panel.vps.models import VPS, next_ctid
from tests.panel.usage.world import batch, physpages, sample
from worker import protocol

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("the panel worker did not ingest the batch")


def test_panel_worker_ingests_a_signed_usage_batch(stack):
    # A VPS row only: nothing is dispatched, so the node worker creates no VPS for this test.
    node = Node.objects.create(name=stack.node_name)
    customer = User.objects.create_user("usage-customer", role=Role.CUSTOMER)
    vps = VPS.objects.create(ctid=next_ctid(), node=node, customer=customer, hostname="u1", template="busybox",
                             state="running")
    # Signed with the panel's key, which the panel worker trusts like a node's (a node client would
    # re-register Celery's process-wide signing serializer under this test process's feet).
    client = panel_app
    queue = stack.panel_env["CTPANEL_PANEL_QUEUE"]
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    for minute, (cpu_s, rx, failcnt) in enumerate(((10, 1000, 0), (40, 61000, 3))):
        body = batch(stack.node_name, now - datetime.timedelta(minutes=2 - minute),
                     sample(vps, cpu_s=cpu_s, rx=rx, beancounters=physpages(failcnt)))
        client.send_task(protocol.TASK_USAGE_BATCH, args=[body], queue=queue)
        wait_for(lambda n=minute: Sample.objects.filter(vps=vps).count() == n + 1)
    rows = list(Sample.objects.filter(vps=vps).order_by("time"))
    assert rows[1].cpu_percent == pytest.approx(50.0) and rows[1].rx_bps == pytest.approx(8000.0)
    assert FailEvent.objects.get(vps=vps).count == 3
    assert TrafficPeriod.objects.get(vps=vps).rx_bytes == 61000


@pytest.fixture
def tampering_serializer():
    """The panel's signed encoding with the signed body altered afterwards (the interval 60 -> 61)."""
    decoder = registry._decoders[SIGNED_CONTENT_TYPE]

    def tampered(data):
        _, _, payload = dumps(data, serializer="auth")
        head, signed = base64.b64decode(payload).rsplit(b"\x00\x01", 1)
        altered = signed.replace(b'"interval": 60', b'"interval": 61')
        assert altered != signed, "nothing to alter in the body"
        return base64.b64encode(head + b"\x00\x01" + altered)

    registry.register("tampered-usage", tampered, decoder, content_type=SIGNED_CONTENT_TYPE, content_encoding="utf-8")
    yield "tampered-usage"
    registry._encoders.pop("tampered-usage", None)
    registry.name_to_type.pop("tampered-usage", None)


def test_an_altered_or_unsigned_usage_batch_is_refused_and_stores_nothing(stack, tampering_serializer):
    # The batch is verified in the pool child only (the main process defers it, panel/core/signing.py).
    node = Node.objects.create(name=stack.node_name)
    customer = User.objects.create_user("usage-forged", role=Role.CUSTOMER)
    vps = VPS.objects.create(ctid=next_ctid(), node=node, customer=customer, hostname="u2", template="busybox",
                             state="running")
    queue = stack.panel_env["CTPANEL_PANEL_QUEUE"]
    log = stack.processes["panel-worker"]
    refusals, invalid = log.log().count("(protocol.untrusted)"), log.log().count("untrusted content of type")
    body = batch(stack.node_name, datetime.datetime.now(datetime.UTC), sample(vps, cpu_s=10, rx=1000))

    panel_app.send_task(protocol.TASK_USAGE_BATCH, args=[body], queue=queue, serializer=tampering_serializer)
    intruder = Celery("intruder", broker=stack.panel_env["CTPANEL_BROKER_URL"], set_as_current=False)
    intruder.conf.task_serializer = "json"
    intruder.send_task(protocol.TASK_USAGE_BATCH, args=[body], queue=queue)
    wait_for(lambda: log.log().count("(protocol.untrusted)") > refusals
             and log.log().count("untrusted content of type") > invalid)
    assert not Sample.objects.filter(vps=vps).exists()

    # The same batch properly signed is stored: the refusals above were the signature, nothing else.
    panel_app.send_task(protocol.TASK_USAGE_BATCH, args=[body], queue=queue)
    wait_for(lambda: Sample.objects.filter(vps=vps).count() == 1)


def worker_connections() -> set[int]:
    """Backends of other processes (the panel worker's pool) on this session's test database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid()")
        return {pid for (pid,) in cursor.fetchall()}


def test_the_panel_worker_keeps_its_database_connection_between_tasks(stack):
    # Celery's Django fixup would close it after every task: a new PostgreSQL backend per usage batch.
    node = Node.objects.create(name=stack.node_name)
    customer = User.objects.create_user("usage-conn", role=Role.CUSTOMER)
    vps = VPS.objects.create(ctid=next_ctid(), node=node, customer=customer, hostname="u3", template="busybox",
                             state="running")
    log = stack.processes["panel-worker"]
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    seen = []
    for minute in range(2):
        body = batch(stack.node_name, now - datetime.timedelta(minutes=2 - minute), sample(vps, cpu_s=minute))
        task = panel_app.send_task(protocol.TASK_USAGE_BATCH, args=[body], queue=stack.panel_env["CTPANEL_PANEL_QUEUE"])
        wait_for(lambda t=task.id: f"Task {protocol.TASK_USAGE_BATCH}[{t}] succeeded" in log.log())
        seen.append(worker_connections())
    assert seen[0], "no connection left after the task"
    assert seen[0] <= seen[1]
    assert Sample.objects.filter(vps=vps).count() == 2
