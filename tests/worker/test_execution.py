"""One delivery of a node operation: decode, journal, work, report — with a real journal."""

import os

import pytest

from kernel.errors import NoSpace
from worker import protocol
from worker.execution import execute
from worker.journal import Journal, owner_id

NODE = "n1"


@pytest.fixture
def journal(tmp_path):
    return Journal(tmp_path / "journal.sqlite", max_deliveries=2)


@pytest.fixture
def sent():
    return []


def deliver(journal, sent, work, op="op-1", **change):
    body = {**protocol.PingRequest(node=NODE, operation_id=op).to_dict(), **change}
    return execute(task_name=protocol.TASK_PING, task_id=op, node=NODE, request_cls=protocol.PingRequest,
                   body=body, work=work, journal=journal, send=sent.append)


def test_success_is_reported_once_and_a_redelivery_does_not_run_again(journal, sent):
    calls = []

    def work(ctx):
        calls.append(ctx.request.operation_id)
        return {"answer": 42}

    first = deliver(journal, sent, work)
    again = deliver(journal, sent, work)
    assert calls == ["op-1"]
    assert first.status == "succeeded" and first.facts == {"answer": 42} and first.percent == 100
    assert again == first and sent == [first, first]
    assert journal.get("op-1").state == "done"


def test_a_kernel_error_fails_with_its_code(journal, sent):
    def work(ctx):
        raise NoSpace("volume full", errno=28)

    report = deliver(journal, sent, work)
    assert (report.status, report.error_code) == ("failed", "kernel.no_space")
    assert "No space left on device" in report.message


def test_a_misrouted_body_is_refused_without_a_journal_entry(journal, sent):
    report = deliver(journal, sent, lambda ctx: {}, node="n2")
    assert report.error_code == protocol.ErrorCode.PROTOCOL_MISROUTED
    assert journal.get("op-1") is None


def test_a_delivery_while_another_live_process_runs_it_is_dropped(journal, sent):
    journal.begin("op-1", protocol.TASK_PING, owner=owner_id(os.getppid()))
    assert deliver(journal, sent, lambda ctx: {}) is None
    assert sent == []


def test_progress_is_reported_and_renews_the_lease(journal, sent):
    def work(ctx):
        before = journal.get("op-1").lease_expires
        ctx.progress("copying", 140)
        assert journal.get("op-1").lease_expires >= before
        return {}

    deliver(journal, sent, work)
    assert [(r.status, r.stage, r.percent) for r in sent] == [("running", "copying", 100), ("succeeded", "", 100)]


def test_an_operation_whose_runs_keep_dying_is_given_up(journal, sent):
    dead = "elsewhere:1:x"
    journal.begin("op-1", protocol.TASK_PING, owner=dead, now=0)
    journal.begin("op-1", protocol.TASK_PING, owner=dead, now=1000)
    report = deliver(journal, sent, lambda ctx: pytest.fail("must not run"))
    assert (report.status, report.error_code) == ("failed", protocol.ErrorCode.GAVE_UP)
    assert "2 deliveries" in report.message


def test_a_second_delivery_after_a_dead_run_says_so(journal, sent):
    journal.begin("op-1", protocol.TASK_PING, owner="elsewhere:1:x", now=0)
    report = deliver(journal, sent, lambda ctx: {})
    assert report.status == "succeeded"
    assert report.log == ["delivery 2 of at most 2: an earlier run did not finish"]
