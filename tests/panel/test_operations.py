"""Operations against the real PostgreSQL: reports applied once, dispatch after commit."""

import uuid

import pytest
from django.db import transaction

from panel.core import services
from panel.core.models import Operation
from worker import protocol

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def report(op: Operation, status: str, **extra) -> protocol.Report:
    return protocol.Report(operation_id=str(op.id), node=op.node_name, status=status, **extra)


def new_op(**extra) -> Operation:
    return services.create_operation(action=protocol.TASK_PING, node_name="n1", **extra)


def test_report_is_applied_once_and_terminal_state_is_final():
    op = new_op()
    services.apply_report(report(op, "running"))
    op.refresh_from_db()
    assert op.status == "running" and op.started_at

    services.apply_report(report(op, "succeeded", facts={"kernel": "6.1"}, duration_ms=12))
    services.apply_report(report(op, "failed", error_code="x", message="late duplicate"))
    op.refresh_from_db()
    assert (op.status, op.result, op.error_code, op.duration_ms) == ("succeeded", {"kernel": "6.1"}, "", 12)


def test_report_from_another_node_is_ignored():
    op = new_op()
    services.apply_report(protocol.Report(operation_id=str(op.id), node="n2", status="succeeded"))
    op.refresh_from_db()
    assert op.status == "pending"


def test_report_for_unknown_operation_changes_nothing():
    assert services.apply_report(protocol.Report(operation_id=str(uuid.uuid4()), node="n1",
                                                 status="succeeded")) is None
    assert not Operation.objects.exists()


def test_payload_and_result_are_stored_redacted():
    op = new_op(payload={"hostname": "a", "root_password": "hunter2"})
    services.apply_report(report(op, "succeeded", facts={"token": "abc"}))
    op.refresh_from_db()
    assert op.payload == {"hostname": "a", "root_password": "********"}
    assert op.result == {"token": "********"}


def test_message_is_sent_only_after_commit(monkeypatch, django_capture_on_commit_callbacks):
    from panel.core import dispatch

    sent = []
    monkeypatch.setattr(dispatch, "_send", lambda *args: sent.append(args))

    with pytest.raises(RuntimeError), transaction.atomic():
        op = new_op()
        dispatch.dispatch(op, protocol.PingRequest(node="n1", operation_id=str(op.id)))
        raise RuntimeError("rolled back")
    assert sent == [] and not Operation.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        op = new_op()
        dispatch.dispatch(op, protocol.PingRequest(node="n1", operation_id=str(op.id)))
        assert sent == []
    assert sent == [(op.pk, protocol.TASK_PING, protocol.PingRequest(node="n1", operation_id=str(op.id)).to_dict())]


def test_dispatch_refuses_a_request_of_another_operation():
    op = new_op()
    with pytest.raises(ValueError):
        from panel.core.dispatch import dispatch

        dispatch(op, protocol.PingRequest(node="n1", operation_id=str(uuid.uuid4())))


def test_operations_nobody_reports_on_are_failed_after_a_while(settings):
    import datetime

    from django.utils import timezone

    settings.CTPANEL_OPERATION_STALE_SECONDS = 600
    quiet, busy, done = new_op(), new_op(), new_op()
    services.apply_report(report(done, "succeeded"))
    later = timezone.now() + datetime.timedelta(seconds=601)
    Operation.objects.filter(pk=busy.pk).update(updated=later - datetime.timedelta(seconds=30))

    assert services.sweep_stale_operations(later) == 1
    quiet.refresh_from_db()
    assert (quiet.status, quiet.error_code) == ("failed", protocol.ErrorCode.PANEL_STALE)
    assert Operation.objects.get(pk=busy.pk).status == "pending"
    assert Operation.objects.get(pk=done.pk).status == "succeeded"


def test_a_broker_failure_fails_the_operation_visibly(monkeypatch, django_capture_on_commit_callbacks):
    from panel.core import dispatch

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(dispatch.app, "send_task", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        op = new_op()
        dispatch.dispatch(op, protocol.PingRequest(node="n1", operation_id=str(op.id)))
    op.refresh_from_db()
    assert (op.status, op.error_code) == ("failed", protocol.ErrorCode.PANEL_BROKER)
    assert "ConnectionRefusedError" in op.error_message
