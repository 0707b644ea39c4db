"""The spawner (kernel/spawn.py): the lean process a VPS's pre-init children are forked from."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from kernel import spawn
from kernel.runtime import Runtime
from tests.kernel import leftovers

pytestmark = pytest.mark.kernel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as fh:
        return {k: v.strip() for k, v in (line.split(":", 1) for line in fh if ":" in line)}


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def test_the_init_is_the_subreapers_child_and_the_spawner_a_lean_host_process(runtime, make_vps):
    ctid = make_vps()
    init = runtime.status(ctid).init_pid
    helper = spawn.spawner_pid()
    assert helper is not None and helper != init
    assert int(_status(init)["PPid"]) == os.getpid()  # C1 exited: the init was reparented to us
    assert int(_status(helper)["PPid"]) == os.getpid()
    assert len(_status(helper)["NSpid"].split()) == 1  # a host process, in no VPS's namespaces
    with open(f"/proc/{helper}/cmdline", "rb") as fh:
        assert b"kernel.spawn" in fh.read()
    assert helper not in runtime.cgroups.pids(ctid)


def test_a_dead_spawner_is_started_again(runtime, make_vps):
    """The next start starts a new spawner; the dead one's waiting pre-init and waiting exec
    helper, orphaned to us (a subreaper, as the supervisor), end and are reaped by that start:
    no zombie is left to us."""
    make_vps()
    first = spawn.spawner_pid()
    assert first is not None
    deadline = time.monotonic() + 20
    while len(waiting := _children_of(first)) < 1 + spawn.SPARE_HELPERS:  # C1 comes 20 ms after a start
        assert time.monotonic() < deadline, "the spawner made no pre-init"
        time.sleep(0.01)
    pidfds = [os.pidfd_open(pid) for pid in waiting]
    try:
        os.kill(first, signal.SIGKILL)
        leftovers.wait_exit(first)
        ctid = make_vps()
        assert runtime.status(ctid).running
        assert spawn.spawner_pid() not in (None, first)
        for pidfd in pidfds:
            assert select.select([pidfd], [], [], 20)[0], "a waiting child of the dead spawner did not end"
            with contextlib.suppress(ChildProcessError):  # reaped already (by the start): not our child
                assert os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None, "a zombie"
    finally:
        for pidfd in pidfds:
            os.close(pidfd)


CALLER = """
import json, os, sys
from kernel import spawn
from kernel.config import NodeConfig
from kernel.runtime import Runtime

spawn.prestart()
before = spawn.spawner_pid()
status = Runtime(NodeConfig(**json.loads(sys.argv[1])), lxcfs=None).start(int(sys.argv[2]))
print(before, spawn.spawner_pid(), status.init_pid, flush=True)
sys.stdin.read()
"""


def test_a_prestarted_spawner_serves_the_start_and_ends_with_its_caller(runtime: Runtime, make_vps):
    ctid = make_vps(start=False)
    caller = subprocess.Popen(
        [sys.executable, "-c", CALLER, json.dumps(dataclasses.asdict(runtime.config)), str(ctid)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert caller.stdout is not None and caller.stdin is not None
    prestarted, helper, init = (int(word) for word in caller.stdout.readline().split())
    assert prestarted == helper  # the start used the spawner prestart() started
    try:
        assert int(_status(helper)["PPid"]) == caller.pid
        caller.stdin.close()
        assert caller.wait(timeout=60) == 0
        leftovers.wait_exit(helper)
    finally:
        with contextlib.suppress(OSError):
            caller.kill()
        caller.wait()
    _reap(helper)  # reparented to us (the subreaper) if it outlived the caller for a moment
    status = runtime.status(ctid)
    assert status.running and status.init_pid == init
    assert not runtime.stop(ctid, fast=True).running


def test_the_init_is_in_every_inner_cgroup_which_roots_its_cgroup_namespace(runtime, make_vps):
    """The pre-init joins the cgroups (through descriptors the caller opened) before it makes its
    cgroup namespace: from the host it is in each inner cgroup, inside each one reads as "/"."""
    ctid = make_vps()
    init = runtime.status(ctid).init_pid
    for path in runtime.cgroups.paths(ctid).inner.values():
        with open(os.path.join(path, "cgroup.procs")) as fh:
            assert str(init) in fh.read().split(), path
    result = runtime.exec(ctid, ["cat", "/proc/1/cgroup"], timeout=30)
    lines = result.stdout.decode().split()
    assert result.returncode == 0 and lines
    assert [line for line in lines if not line.endswith(":/")] == []


def test_starts_queued_at_once_each_get_a_pre_init(runtime, make_vps):
    """One pre-init waits per spawner; starts queued together are served one after the other."""
    import threading

    ctids = [make_vps(start=False) for _ in range(3)]
    errors: list[BaseException] = []

    def start(ctid: int) -> None:
        try:
            runtime.start(ctid)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(ctid,)) for ctid in ctids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    pids = {runtime.status(ctid).init_pid for ctid in ctids}
    assert None not in pids and len(pids) == 3


def _children_of(pid: int) -> list[int]:
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/task/{task}/children") as fh:
            children += [int(child) for child in fh.read().split()]
    return children


def _zombies_in(pids: list[int], id_start: int) -> list[int]:
    """Zombies among `pids` that ran as a uid of the VPS's range (exec helpers)."""
    found = []
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            status = _status(pid)
            if status["State"].startswith("Z") and id_start <= int(status["Uid"].split()[1]) < id_start + 65536:
                found.append(pid)
    return found


def test_the_spawner_forks_the_exec_helpers_and_reaps_them(runtime: Runtime, make_vps):
    """A caller with a spawner has its exec helpers forked by it (a small process, not a copy of
    the caller): a session's helper is the spawner's child, in the VPS's user namespace; the
    spawner reaps every helper, and a helper's own end (killed here) still gives the caller its
    status, sent by the spawner once it reaped the helper."""
    from kernel import enter

    ctid = make_vps()
    spawner = spawn.spawner_pid()
    init = runtime.status(ctid).init_pid
    id_start = runtime.registry.get(ctid).id_start
    assert spawner is not None
    session = runtime.spawn(ctid, ["sleep", "1000"])
    try:
        assert session.command_pid(timeout=10)
        assert int(_status(session.pid)["PPid"]) == spawner
        assert os.readlink(f"/proc/{session.pid}/ns/user") == os.readlink(f"/proc/{init}/ns/user")
        os.kill(session.pid, signal.SIGKILL)  # no "exit N" from it: the spawner's "end" says how it ended
        assert session.wait() == 128 + signal.SIGKILL
    finally:
        session.close()
    assert [runtime.exec(ctid, ["sh", "-c", f"exit {code}"]).returncode for code in (3, 0)] == [3, 0]
    assert enter.reap_helpers(10) == 0
    assert _zombies_in(_children_of(spawner), id_start) == []
    assert spawn.spawner_pid() == spawner  # the same spawner served them all


def test_helpers_of_a_killed_spawner_are_reaped_by_their_caller(runtime: Runtime, make_vps):
    """A spawner killed while its helpers run leaves them to the nearest subreaper (this process,
    as the node's supervisor): the caller's wait reaps its orphaned helper, and the next exec
    forks its own helper (no spawner runs)."""
    ctid = make_vps()
    id_start = runtime.registry.get(ctid).id_start
    spawner = spawn.spawner_pid()
    assert spawner is not None
    session = runtime.spawn(ctid, ["sleep", "1000"])
    try:
        assert session.command_pid(timeout=10)
        os.kill(spawner, signal.SIGKILL)
        leftovers.wait_exit(spawner)
        _reap(spawner)
        assert int(_status(session.pid)["PPid"]) == os.getpid()  # reparented to us, the subreaper
        session.kill()
        assert session.wait() == 128 + signal.SIGKILL
    finally:
        session.close()
    assert _zombies_in(_children_of(os.getpid()), id_start) == []
    assert runtime.exec(ctid, ["true"]).returncode == 0
