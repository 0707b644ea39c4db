"""Node reports as the panel worker applies them: the audit names the node, progress, one terminal state.

Reports go through the panel worker's task (panel.core.tasks.apply_report, called in-process) or
panel.core.services.apply_report, against the real PostgreSQL.
"""

from __future__ import annotations

import queue
import threading

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.utils import timezone

from panel.core import services as operations
from panel.core import tasks
from panel.core.audit.models import ObjectChange
from panel.core.models import Operation
from panel.core.signals import operation_reported
from panel.nodes.choices import NodeState
from panel.nodes.models import Node
from panel.plans import services as plans
from panel.vps import services
from panel.vps.models import VPS
from tests.panel.locks import backend_pid, waiting
from tests.panel.tenants import make_tenants
from tests.services import wait_for
from worker import protocol

GIB = 2**30


def report(op: Operation, status: str, **extra) -> protocol.Report:
    return protocol.Report(operation_id=str(op.pk), node=op.node_name, status=status, **extra)


@pytest.mark.integration
@pytest.mark.django_db
def test_a_state_change_from_a_node_report_is_audited_as_that_node():
    t = make_tenants()
    node = Node.objects.create(name="rep1", state=NodeState.UP, last_seen=timezone.now(),
                               capacity={"memory_available": 64 * GIB}, facts={"templates": ["busybox"]})
    plan = plans.create_plan(t.admin, name="small", ram=GIB, ipv4_count=0, ipv6_count=0)
    vps, op = services.create_vps(t.admin, customer=t.customer0, node=node, template="busybox", hostname="audited",
                                  plan=plan)
    tasks.apply_report(report(op, protocol.Status.SUCCEEDED, facts={"ctid": vps.ctid, "state": "running",
                                                                    "init_pid": 4242}).to_dict())
    vps.refresh_from_db()
    assert vps.state == "running"
    change = ObjectChange.objects.filter(content_type=ContentType.objects.get_for_model(VPS),
                                         object_id=str(vps.pk), action="update").latest("pk")
    assert (change.source, change.user, change.before["state"], change.after["state"]) == (
        "node:rep1", None, "creating", "running")
    assert "state" in change.changed


@pytest.mark.integration
@pytest.mark.django_db
def test_progress_reports_set_stage_and_percent_until_the_end():
    op = operations.create_operation(action=protocol.TASK_VPS_START, node_name="n1", target_type="vps",
                                     target_id="101")
    operations.apply_report(report(op, protocol.Status.RUNNING, stage="volume", percent=20))
    op.refresh_from_db()
    assert (op.status, op.stage, op.percent, op.finished_at) == ("running", "volume", 20, None)
    started = op.started_at
    assert started is not None
    operations.apply_report(report(op, protocol.Status.RUNNING, stage="network", percent=70))
    op.refresh_from_db()
    assert (op.stage, op.percent, op.started_at) == ("network", 70, started)
    operations.apply_report(report(op, protocol.Status.SUCCEEDED, percent=100, duration_ms=900))
    operations.apply_report(report(op, protocol.Status.RUNNING, stage="late", percent=30))  # after the end
    op.refresh_from_db()
    assert (op.status, op.stage, op.percent, op.duration_ms) == ("succeeded", "network", 100, 900)
    assert op.finished_at is not None


def _apply_in_thread(rep: protocol.Report, backends: queue.Queue, go: threading.Event, errors: list) -> None:
    try:
        backends.put(backend_pid())
        go.wait(60)
        operations.apply_report(rep)
    except Exception as exc:  # the test names what a thread met
        errors.append(exc)
    finally:
        connection.close()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_terminal_reports_applied_at_once_leave_exactly_one():
    """Both threads have the report in hand while the test holds the operation's row; then both go.

    What follows a terminal report (the VPS's state, budgets, lifecycle events) hangs off
    `operation_reported` with a terminal status: it must be sent once."""
    op = operations.create_operation(action=protocol.TASK_PING, node_name="n1")
    finished = []

    def count(sender, operation, **kwargs):
        if operation.pk == op.pk and operation.is_terminal:
            finished.append(operation.status)

    operation_reported.connect(count, weak=False, dispatch_uid="test-terminal-count")
    reports = [report(op, protocol.Status.SUCCEEDED, facts={"kernel": "6.1"}, log=["succeeded"], duration_ms=5),
               report(op, protocol.Status.FAILED, error_code="boom", message="it broke", log=["failed"])]
    backends, go, errors = queue.Queue(), threading.Event(), []
    threads = [threading.Thread(target=_apply_in_thread, args=(r, backends, go, errors)) for r in reports]
    for thread in threads:
        thread.start()
    try:
        pids = [backends.get(timeout=60) for _ in threads]
        with transaction.atomic():
            Operation.objects.select_for_update().get(pk=op.pk)
            go.set()
            wait_for(lambda: waiting(pids) == 2 or errors, 60, "both reports to wait for the operation's row")
    finally:
        go.set()
        for thread in threads:
            thread.join(timeout=60)
        operation_reported.disconnect(dispatch_uid="test-terminal-count")
    assert errors == []
    op.refresh_from_db()
    assert op.log in (["succeeded"], ["failed"])  # one report applied, never both
    winner = reports[0] if op.log == ["succeeded"] else reports[1]
    assert (op.status, op.error_code, op.result, op.duration_ms) == (
        winner.status, winner.error_code, winner.facts, winner.duration_ms)
    assert finished == [winner.status]
