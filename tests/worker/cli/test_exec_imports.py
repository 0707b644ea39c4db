"""`vzctl exec` stays lean: its path builds no Runtime and imports no dataclasses, typing or socket (issue 4's
target is a start within a few milliseconds of a bare interpreter; bench/runtime.py measures it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from worker.cli import codes

pytestmark = pytest.mark.kernel
# socket, selectors, termios: ~2.5 ms together (kernel/fdpass.py, worker/cli/relay.py); the ascii codec: reads as utf-8;
# signal (its enums), resource (a shared library: kernel.syscalls.prlimit), array and collections.abc: ~1 ms together;
# _socket (kernel.fdpass): only a terminal's pty master is passed over a socket (kernel/helper.py);
# the ctypes package: ~0.9 ms more than its C half, which kernel/libc.py uses
HEAVY = ("dataclasses", "typing", "kernel.runtime", "kernel.storage", "kernel.cgroups", "kernel.registry",
         "socket", "selectors", "termios", "encodings.ascii", "signal", "resource", "array", "collections.abc",
         "_socket", "kernel.fdpass", "ctypes")
WATCHED = (*HEAVY, "json")  # json: only where no init record is there to read (kernel/running.py read_init)
PROBE = ("import sys; from worker.cli.vzctl import main; code = main(sys.argv[1:]); "
         f"print(code, *sorted(m for m in {WATCHED!r} if m in sys.modules))")


def test_exec_and_enter_paths_import_nothing_heavy(run, ctid: int, env: dict[str, str]) -> None:
    c = str(ctid)
    assert run("vzctl", "create", c, "--ostemplate", "busybox")[0] == 0

    def probe(*args: str) -> list[str]:
        result = subprocess.run([sys.executable, "-c", PROBE, *args], env={**os.environ, **env},
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True, timeout=60)
        return result.stdout.split()

    # Not running: no init record, so the JSON state is read (json: only on this path)
    assert probe("exec", c, "true") == [str(codes.NOT_RUNNING), "json"]
    assert probe("exec", "99999", "true") == [str(codes.NO_PRIVATE)]
    assert probe("enter", c) == [str(codes.NOT_RUNNING), "json"]  # enter shares exec's path (_attach)
    assert run("vzctl", "start", c)[0] == 0
    assert probe("exec", c, "true") == ["0"]
    assert probe("exec2", c, "exit 3") == ["3"]
    assert probe("exec", c, "exit 3") == [str(codes.COMMAND_FAILED)]
    assert run("vzctl", "pause", c)[0] == 0
    assert probe("exec", c, "true") == [str(codes.NOT_RUNNING)]  # paused: refused, not hung
    assert run("vzctl", "resume", c)[0] == 0
    # A VPS started by a runtime that wrote no init record: found through the JSON state.
    record = os.path.join(env["CTPANEL_STATE_ROOT"], "run", f"{c}.init")
    os.unlink(record)
    assert probe("exec", c, "true") == ["0", "json"]
    assert run("vzctl", "stop", c)[0] == 0 and not os.path.exists(record)
    # The probe itself can fail: the full path (any other command) builds a Runtime.
    assert "kernel.runtime" in probe("status", c)


def test_exec_as_the_program_exits_with_the_commands_code_and_output(run, ctid: int, env: dict[str, str]) -> None:
    """As the program (`main()` reading sys.argv), the lean path ends the process itself (os._exit)."""
    c = str(ctid)
    assert run("vzctl", "create", c, "--ostemplate", "busybox")[0] == 0
    assert run("vzctl", "start", c)[0] == 0

    def program(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-c", "import sys; from worker.cli.vzctl import main; sys.exit(main())",
                               *args], env={**os.environ, **env}, input=stdin, capture_output=True, timeout=60)

    done = program("exec2", c, "cat; echo err >&2; exit 3", stdin=b"piped\n")
    assert (done.returncode, done.stdout, done.stderr) == (3, b"piped\n", b"err\n")
    done = program("exec", c, "exit 5")
    assert (done.returncode, done.stderr) == (codes.COMMAND_FAILED, b"Command failed with exit code 5\n")
    assert program("exec", c, "true").returncode == 0
