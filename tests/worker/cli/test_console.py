"""vzctl with the node supervisor running: start/stop through it, console attach and detach."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from kernel.runtime import Runtime
from tests.worker.cli.test_terminal import on_terminal
from worker.cli import codes
from worker.supervisor import protocol

pytestmark = pytest.mark.kernel


def ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        return int(fh.read().rpartition(")")[2].split()[1])


@pytest.fixture
def supervisor(env: dict[str, str], cli_runtime: Runtime) -> Iterator[subprocess.Popen[bytes]]:
    path = protocol.socket_path(env["CTPANEL_STATE_ROOT"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.supervisor", "--node", env["CTPANEL_NODE_NAME"],
         "--state-root", env["CTPANEL_STATE_ROOT"], "--cgroup-prefix", env["CTPANEL_CGROUP_PREFIX"],
         "--idmap-registry", env["CTPANEL_IDMAP_REGISTRY"], "--id-base", env["CTPANEL_ID_BASE"]],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(path):
            assert proc.poll() is None and time.monotonic() < deadline, "the supervisor did not come up"
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a stale socket would make later tests believe it runs


def test_start_goes_through_the_supervisor_and_the_console_attaches(
    run, ctid: int, env: dict[str, str], cli_runtime: Runtime, supervisor: subprocess.Popen[bytes]
) -> None:
    c = str(ctid)
    assert run("vzctl", "create", c, "--ostemplate", "busybox")[0] == 0
    assert run("vzctl", "start", c)[0] == 0
    init = cli_runtime.status(ctid).init_pid
    assert init and ppid(init) == supervisor.pid  # the supervisor parents it, holds its console
    code, out, _ = on_terminal(env, ["console", c], typed=b"\x1b.", prompt=b"Esc . detaches")
    assert code == 0, out
    assert f"Detached from CT {ctid} console".encode() in out
    assert cli_runtime.status(ctid).init_pid == init  # detaching leaves the VPS running
    assert run("vzctl", "stop", c, "--fast")[0] == 0
    assert not cli_runtime.status(ctid).running
    assert run("vzctl", "console", c)[0] == codes.NOT_RUNNING


def test_console_without_a_supervisor(run, ctid: int) -> None:
    assert run("vzctl", "create", str(ctid), "--ostemplate", "busybox")[0] == 0
    code, _, err = run("vzctl", "console", str(ctid))
    assert code == codes.SYSTEM_ERROR
    assert "supervisor" in err
