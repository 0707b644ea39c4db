"""`vzctl exec` and `vzctl enter` from a terminal: the VPS gets a new pty of its own devpts."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys

import pytest

pytestmark = pytest.mark.kernel


def on_terminal(
    env: dict[str, str], args: list[str], typed: bytes = b"", prompt: bytes = b"# "
) -> tuple[int, bytes, int]:
    """Run vzctl with fds 0-2 on a pty made here, type `typed` once `prompt` shows;
    (exit code, everything it printed, the pty's st_dev)."""
    master, slave = pty.openpty()
    device = os.fstat(slave).st_dev
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.cli.vzctl", *args],
        stdin=slave, stdout=slave, stderr=slave, env={**os.environ, **env}, start_new_session=True,
    )
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        assert ready, f"no output in 60 s; so far {out!r}"
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: vzctl exited and closed the slave
            break
        if not chunk:
            break
        out += chunk
        if typed and prompt in out:
            os.write(master, typed)
            typed = b""
    os.close(master)
    return proc.wait(timeout=60), out, device


def test_exec_from_a_terminal_gets_a_pty_of_the_vps(run, ctid: int, env: dict[str, str]) -> None:
    assert run("vzctl", "create", str(ctid), "--ostemplate", "busybox")[0] == 0
    assert run("vzctl", "start", str(ctid))[0] == 0
    script = "tty; stat -L -c dev=%d /proc/self/fd/0; stat -c devpts=%d /dev/pts/ptmx; exit 4"
    code, out, host_device = on_terminal(env, ["exec2", str(ctid), script])
    assert code == 4, out
    lines = out.decode().replace("\r", "").split("\n")
    assert lines[0].startswith("/dev/pts/")  # a terminal inside
    tty_dev = int(next(line for line in lines if line.startswith("dev="))[4:])
    vps_devpts = int(next(line for line in lines if line.startswith("devpts="))[7:])
    assert tty_dev == vps_devpts  # from the VPS's own devpts instance...
    assert tty_dev != host_device  # ...not the caller's terminal


def test_enter_relays_a_shell(run, ctid: int, env: dict[str, str]) -> None:
    assert run("vzctl", "create", str(ctid), "--ostemplate", "busybox", "--hostname", "in.example.com")[0] == 0
    assert run("vzctl", "start", str(ctid))[0] == 0
    code, out, _ = on_terminal(env, ["enter", str(ctid)], b"echo $((6*7)) $(hostname); exit 0\n")
    text = out.decode(errors="replace")
    assert code == 0, text
    assert "42 in.example.com" in text
    assert f"entered into CT {ctid}" in text and f"exited from CT {ctid}" in text


def test_enter_a_stopped_vps(run, ctid: int) -> None:
    assert run("vzctl", "create", str(ctid), "--ostemplate", "busybox")[0] == 0
    assert run("vzctl", "enter", str(ctid))[0] == 31
