"""The spawner (kernel/spawn.py): the lean process a VPS's pre-init children are forked from."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys

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
    make_vps()
    first = spawn.spawner_pid()
    assert first is not None
    os.kill(first, signal.SIGKILL)
    leftovers.wait_exit(first)
    ctid = make_vps()
    assert runtime.status(ctid).running
    assert spawn.spawner_pid() not in (None, first)


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
