"""The node's operation journal: one live run per operation, bounded deliveries."""

import multiprocessing
import os

import pytest

from worker.journal import Journal, State, Verdict, owner_alive, owner_id


@pytest.fixture
def journal(tmp_path):
    return Journal(tmp_path / "journal.sqlite", lease_seconds=60, max_deliveries=3)


def test_first_delivery_runs_and_a_finished_operation_is_not_run_again(journal):
    verdict, entry = journal.begin("op1", "node.ping", body={"a": 1}, owner="h:1:1", now=100)
    assert (verdict, entry.deliveries, entry.state, entry.body) == (Verdict.RUN, 1, State.RUNNING, {"a": 1})
    journal.finish("op1", {"status": "succeeded"}, now=101)

    verdict, entry = journal.begin("op1", "node.ping", owner="h:2:2", now=102)
    assert (verdict, entry.report) == (Verdict.FINISHED, {"status": "succeeded"})
    assert entry.deliveries == 1


def test_live_lease_makes_a_second_delivery_a_duplicate_until_it_expires(journal):
    me = owner_id()
    journal.begin("op1", "node.ping", owner=me, now=100)
    other = owner_id(os.getppid())
    assert journal.begin("op1", "node.ping", owner=other, now=120)[0] == Verdict.DUPLICATE
    assert journal.renew("op1", owner=me, now=150)
    assert journal.begin("op1", "node.ping", owner=other, now=200)[0] == Verdict.DUPLICATE
    verdict, entry = journal.begin("op1", "node.ping", owner=other, now=211)
    assert (verdict, entry.deliveries, entry.lease_owner) == (Verdict.RUN, 2, other)
    assert not journal.renew("op1", owner=me, now=212)


def test_a_dead_owners_lease_is_not_honoured(journal):
    child = multiprocessing.get_context("fork").Process(target=lambda: None)
    child.start()
    dead = owner_id(child.pid)
    child.join()
    assert not owner_alive(dead) and owner_alive(owner_id())
    journal.begin("op1", "node.ping", owner=dead, now=100)
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    zombie = ctx.Process(target=go.wait)
    zombie.start()
    zombie_owner = owner_id(zombie.pid)
    assert owner_alive(zombie_owner)
    go.set()
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped yet
    assert not owner_alive(zombie_owner)
    zombie.join()
    assert [e.operation_id for e in journal.unfinished(now=101)] == ["op1"]
    assert journal.begin("op1", "node.ping", owner=owner_id(), now=101)[0] == Verdict.RUN


def test_deliveries_are_bounded(journal):
    for n in range(3):
        assert journal.begin("op1", "node.ping", owner=f"h:{n}:x", now=100 + n * 100)[0] == Verdict.RUN
    assert journal.begin("op1", "node.ping", owner="h:9:x", now=1000)[0] == Verdict.GIVE_UP


def _race(path, barrier, results):
    journal = Journal(path)
    barrier.wait()
    results.put(journal.begin("op-race", "node.ping")[0].value)
    barrier.wait()  # stay alive (the lease owner) until every process has tried


def test_concurrent_deliveries_in_separate_processes_run_once(tmp_path):
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(tmp_path / "j.sqlite", barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    assert outcomes.count("run") == 1, outcomes
