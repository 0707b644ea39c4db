"""`vzctl exec`/enter processes live under the VPS's limits like the init's children, and the exec
helper can neither be charged to the VPS nor, when killed anyway, leave a VPS that cannot stop."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from kernel.run import run
from kernel.ubc import Limits, apply

pytestmark = pytest.mark.kernel
MB = 1 << 20


def _limits_line(pid: int, name: str) -> list[str]:
    with open(f"/proc/{pid}/limits", encoding="ascii") as fh:
        return next(line for line in fh if line.startswith(name)).split()


def _stops(runtime, ctid: int) -> bool:
    """stop() returns (a hang guard only: a VPS whose stop hangs would block the whole run)."""
    worker = threading.Thread(target=runtime.stop, args=(ctid,), kwargs={"fast": True}, daemon=True)
    worker.start()
    worker.join(120)
    return not worker.is_alive() and not runtime.status(ctid).running


def test_exec_inherits_numfile_and_ioprio(limited_vps, runtime) -> None:
    ctid = limited_vps(Limits(numfile=500, ioprio=7))
    assert runtime.exec(ctid, ["sh", "-c", "ulimit -n"]).stdout == b"500\n"
    attached = runtime.spawn(ctid, ["sleep", "1000"])
    try:
        pid = attached.command_pid()
        assert _limits_line(pid, "Max open files")[3:5] == ["500", "500"]
        assert run(["ionice", "-p", str(pid)]).stdout.strip() == "best-effort: prio 7"
    finally:
        attached.kill()
        attached.close()
        attached.wait()


def test_exec_follows_a_live_change(limited_vps, runtime) -> None:
    ctid = limited_vps(Limits(numfile=800, ioprio=4))
    apply(runtime.cgroups, ctid, Limits(numfile=300, ioprio=1), previous=Limits(numfile=800, ioprio=4))
    out = runtime.exec(ctid, ["sh", "-c", "ulimit -n; ulimit -Hn"]).stdout
    assert out == b"300\n300\n"


def test_exec_helper_is_not_in_the_vps_cgroups(limited_vps, runtime) -> None:
    ctid = limited_vps(Limits())
    attached = runtime.spawn(ctid, ["sleep", "1000"])
    try:
        attached.command_pid()
        inside = runtime.cgroups.pids(ctid)
        assert attached.inner_pid in inside
        assert attached.pid not in inside
    finally:
        attached.kill()
        attached.close()
        attached.wait()


def test_killed_helper_leaves_no_zombie_and_the_vps_stops(limited_vps, runtime) -> None:
    # The OOM killer picking the helper, made deterministic: SIGKILL it while its command runs.
    ctid = limited_vps(Limits())
    attached = runtime.spawn(ctid, ["sleep", "1000"])
    inner = attached.command_pid()
    os.kill(attached.pid, signal.SIGKILL)
    attached.close()
    assert attached.wait() == 128 + signal.SIGKILL
    assert not os.path.exists(f"/proc/{inner}")  # killed and reaped: no zombie of the VPS's PID namespace
    assert _stops(runtime, ctid)


def test_oom_in_a_tiny_vps_kills_the_hog_not_the_exec(limited_vps, runtime) -> None:
    ctid = limited_vps(Limits(ram=32 * MB, swap=0))
    result = runtime.exec(ctid, ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo rc=$?"],
                          timeout=60)
    assert (result.returncode, result.stdout) == (0, b"rc=137\n")
    assert _stops(runtime, ctid)


def test_killing_a_session_right_after_it_starts_leaves_no_zombie(limited_vps, runtime) -> None:
    # kill() before the helper has reported its command's PID (the command's output is already
    # there): the command still ends up killed and reaped, and the VPS stops.
    ctid = limited_vps(Limits())
    for _ in range(3):
        attached = runtime.spawn(ctid, ["sh", "-c", "echo up; exec sleep 1000"])
        assert os.read(attached.stdout, 3) == b"up\n"
        attached.kill()
        attached.close()
        assert attached.wait() == 128 + signal.SIGKILL
        assert attached.inner_pid and not os.path.exists(f"/proc/{attached.inner_pid}")
    assert _stops(runtime, ctid)
