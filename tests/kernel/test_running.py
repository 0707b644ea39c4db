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
