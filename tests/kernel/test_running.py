"""kernel/running.py: a recorded init is running only while that very process lives."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kernel import running


def test_running_pid_reads_the_runtime_state(tmp_path: Path) -> None:
    state = tmp_path / "101.json"
    assert running.running_pid(str(state)) is None  # never started
    state.write_text(json.dumps({"init_pid": os.getpid(), "starttime": running.starttime(os.getpid())}))
    assert running.running_pid(str(state)) == os.getpid()
    state.write_text(json.dumps({"init_pid": os.getpid(), "starttime": 1}))
    assert running.running_pid(str(state)) is None  # same PID, another process: reused
    for emptied in ("", "{", '{"starttime": 5}'):  # the file is not fsync'ed: a host crash may empty it
        state.write_text(emptied)
        assert running.running_pid(str(state)) is None


def test_lookup_and_inner_procs(tmp_path: Path) -> None:
    (tmp_path / "ct").mkdir()
    assert running.lookup(str(tmp_path), 101) == (None, None)
    outer = {"memory": "/sys/fs/cgroup/memory/p/101", "unified": "/sys/fs/cgroup/unified/p/101"}
    (tmp_path / "ct" / "101.json").write_text(json.dumps({"ctid": 101, "cgroups": outer}))
    record, pid = running.lookup(str(tmp_path), 101)
    assert record is not None and record["cgroups"] == outer and pid is None
    assert running.inner_procs(outer) == [f"{p}/vps/cgroup.procs" for p in outer.values()]


def test_init_record_is_read_without_json(tmp_path: Path) -> None:
    """The plain-text init record vzctl exec reads (running.init_text / read_init)."""
    path = str(tmp_path / "101.init")
    outer = {"cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/p x/101", "name=systemd": "/sys/fs/cgroup/systemd/p x/101"}
    assert running.read_init(path) is None  # no record: the caller falls back to the JSON state
    me = os.getpid()
    Path(path).write_text(running.init_text(me, running.starttime(me) or 0, outer))
    assert running.read_init(path) == (me, outer)
    Path(path).write_text(running.init_text(me, 1, outer))
    assert running.read_init(path) == (None, outer)  # same PID, another process: reused
    for emptied in ("", "12\n", "x y\n"):  # not fsync'ed: a host crash may empty it
        Path(path).write_text(emptied)
        assert running.read_init(path) == (None, {})
