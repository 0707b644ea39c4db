"""`vzctl exec` stays lean: its path builds no Runtime and imports neither dataclasses nor typing (issue 4's
target is a start within a few milliseconds of a bare interpreter; bench/runtime.py measures it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from worker.cli import codes

pytestmark = pytest.mark.kernel
HEAVY = ("dataclasses", "typing", "kernel.runtime", "kernel.storage", "kernel.cgroups", "kernel.registry")
PROBE = ("import sys; from worker.cli.vzctl import main; code = main(sys.argv[1:]); "
         f"print(code, *sorted(m for m in {HEAVY!r} if m in sys.modules))")


def test_exec_and_enter_paths_import_nothing_heavy(run, ctid: int, env: dict[str, str]) -> None:
    c = str(ctid)
    assert run("vzctl", "create", c, "--ostemplate", "busybox")[0] == 0

    def probe(*args: str) -> list[str]:
        result = subprocess.run([sys.executable, "-c", PROBE, *args], env={**os.environ, **env},
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True, timeout=60)
        return result.stdout.split()

    assert probe("exec", c, "true") == [str(codes.NOT_RUNNING)]
    assert probe("exec", "99999", "true") == [str(codes.NO_PRIVATE)]
    assert probe("enter", c) == [str(codes.NOT_RUNNING)]  # enter shares exec's path (_attach)
    assert run("vzctl", "start", c)[0] == 0
    assert probe("exec", c, "true") == ["0"]
    assert probe("exec2", c, "exit 3") == ["3"]
    assert probe("exec", c, "exit 3") == [str(codes.COMMAND_FAILED)]
    assert run("vzctl", "pause", c)[0] == 0
    assert probe("exec", c, "true") == [str(codes.NOT_RUNNING)]  # paused: refused, not hung
    assert run("vzctl", "resume", c)[0] == 0
    # The probe itself can fail: the full path (any other command) builds a Runtime.
    assert "kernel.runtime" in probe("status", c)
