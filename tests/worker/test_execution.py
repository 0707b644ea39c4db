"""One delivery of a node operation: decode, journal, work, report — with a real journal."""

import os
import threading

import pytest

from kernel.errors import NoSpace
from worker import protocol
from worker.execution import PROGRESS_DELAY, execute
from worker.journal import Journal, owner_id

NODE = "n1"


@pytest.fixture
def journal(tmp_path):
    return Journal(tmp_path / "journal.sqlite", max_deliveries=2)


@pytest.fixture
def sent():
    return []


def deliver(journal, sent, work, op="op-1", progress_delay=PROGRESS_DELAY, send=None, **change):
    body = {**protocol.PingRequest(node=NODE, operation_id=op).to_dict(), **change}
    return execute(task_name=protocol.TASK_PING, task_id=op, node=NODE, request_cls=protocol.PingRequest,
                   body=body, work=work, journal=journal, send=send or sent.append, progress_delay=progress_delay)


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

    deliver(journal, sent, work, progress_delay=0)
    assert [(r.status, r.stage, r.percent) for r in sent] == [("running", "copying", 100), ("succeeded", "", 100)]


def test_an_operation_that_ends_before_the_progress_delay_reports_only_its_end(journal, sent):
    def work(ctx):
        ctx.progress("copying", 10)
        ctx.progress("starting", 60)
        return {}

    deliver(journal, sent, work, progress_delay=3600)
    assert [r.status for r in sent] == ["succeeded"]


def test_progress_held_back_goes_out_when_the_delay_is_up_latest_first_and_before_the_end(journal, sent):
    reported = threading.Event()

    def send(report):
        sent.append(report)
        if report.status == "running":
            reported.set()

    def work(ctx):
        ctx.progress("copying", 10)
        ctx.progress("starting", 60)
        assert reported.wait(30), "the held-back progress was never sent"
        ctx.progress("starting", 70)  # the delay is up: at once
        return {}

    deliver(journal, sent, work, progress_delay=0.05, send=send)
    assert [(r.status, r.stage, r.percent) for r in sent] == [
        ("running", "starting", 60), ("running", "starting", 70), ("succeeded", "", 100)]


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
