"""vzctl on real busybox VPSs: every command with OpenVZ's exit codes."""

from __future__ import annotations

import json
import os

import pytest

from kernel import running
from kernel.runtime import CreateSpec, Runtime
from worker.cli import codes

pytestmark = pytest.mark.kernel


def create(run, ctid: int, *extra: str) -> None:
    code, _, err = run("vzctl", "create", str(ctid), "--ostemplate", "busybox", *extra)
    assert code == 0, err


def test_lifecycle_with_exit_codes(run, ctid: int, env: dict[str, str], cli_runtime: Runtime) -> None:
    c = str(ctid)
    assert run("vzctl", "status", c)[:2] == (0, f"CTID {ctid} deleted unmounted down\n")
    assert run("vzctl", "start", c)[0] == codes.NO_PRIVATE
    assert run("vzctl", "create", c, "--ostemplate", "no-such-template")[0] == codes.TEMPLATE_NOT_FOUND
    assert run("vzctl", "create", c, "--ostemplate", "busybox", "--config", "no-such")[0] == codes.NO_CONFIG
    assert run("vzctl", "create", c, "--ostemplate", "busybox", "--hostname", "bad_name")[0] == codes.BAD_HOSTNAME
    assert cli_runtime.registry.find(ctid) is None
    create(run, ctid, "--hostname", "one.example.com", "--config", "vswap-512m")
    assert run("vzctl", "create", c, "--ostemplate", "busybox")[0] == codes.PRIVATE_EXISTS
    assert run("vzctl", "status", c)[1] == f"CTID {ctid} exist unmounted down\n"
    assert run("vzctl", "stop", c)[0] == codes.NOT_RUNNING
    assert run("vzctl", "pause", c)[0] == codes.NOT_RUNNING
    assert run("vzctl", "resume", c)[0] == codes.NOT_RUNNING
    assert run("vzctl", "exec", c, "true")[0] == codes.NOT_RUNNING

    assert run("vzctl", "start", c)[0] == 0
    assert run("vzctl", "status", c)[1] == f"CTID {ctid} exist mounted running\n"
    assert run("vzctl", "start", c)[0] == codes.RUNNING
    assert run("vzctl", "exec2", c, "hostname")[1] == "one.example.com\n"
    assert run("vzctl", "destroy", c)[0] == codes.RUNNING
    assert run("vzctl", "umount", c)[0] == codes.RUNNING
    assert run("vzctl", "mount", c)[0] == codes.MOUNTED

    first = cli_runtime.status(ctid).init_pid
    assert run("vzctl", "restart", c)[0] == 0
    second = cli_runtime.status(ctid).init_pid
    assert second and second != first

    assert run("vzctl", "pause", c)[0] == 0
    assert cli_runtime.status(ctid).frozen
    assert run("vzctl", "exec", c, "true")[0] == codes.NOT_RUNNING  # paused: exec would freeze too
    assert run("vzctl", "resume", c)[0] == 0
    assert not cli_runtime.status(ctid).frozen

    assert run("vzctl", "stop", c, "--fast")[0] == 0
    assert run("vzctl", "status", c)[1] == f"CTID {ctid} exist unmounted down\n"
    assert run("vzctl", "umount", c)[0] == codes.NOT_MOUNTED
    assert run("vzctl", "mount", c)[0] == 0
    assert run("vzctl", "status", c)[1] == f"CTID {ctid} exist mounted down\n"
    assert os.path.isfile(os.path.join(cli_runtime.root_path(ctid), "bin", "busybox"))
    assert run("vzctl", "mount", c)[0] == codes.MOUNTED
    assert run("vzctl", "umount", c)[0] == 0

    conf = os.path.join(env["CTPANEL_CONF_DIR"], f"{ctid}.conf")
    assert os.path.exists(conf)
    assert run("vzctl", "destroy", c)[0] == 0
    assert not os.path.exists(conf)
    assert cli_runtime.registry.find(ctid) is None
    assert run("vzctl", "destroy", c)[0] == codes.NO_PRIVATE


def test_graceful_stop(run, ctid: int, cli_runtime: Runtime) -> None:
    create(run, ctid)
    assert run("vzctl", "start", str(ctid))[0] == 0
    pid = cli_runtime.status(ctid).init_pid
    code, out, _ = run("vzctl", "stop", str(ctid))
    assert (code, out) == (0, "Container was stopped\n")
    assert not os.path.exists(f"/proc/{pid}")  # reaped: no zombie left
    assert not cli_runtime.status(ctid).running


def test_exec_and_exec2_exit_codes_and_stdio(run, ctid: int) -> None:
    create(run, ctid)
    c = str(ctid)
    assert run("vzctl", "start", c)[0] == 0
    assert run("vzctl", "exec", c, "true")[0] == 0
    assert run("vzctl", "exec", c, "exit", "3")[0] == codes.COMMAND_FAILED
    assert run("vzctl", "exec2", c, "exit", "3")[0] == 3
    assert run("vzctl", "exec2", c, "no-such-command")[0] == 127
    assert run("vzctl", "exec", c, "no-such-command")[0] == codes.COMMAND_FAILED
    code, out, err = run("vzctl", "exec2", c, "tr a-z A-Z; echo oops >&2", stdin=b"piped in\n")
    assert (code, out) == (0, "PIPED IN\n")
    assert err == "oops\n"
    assert run("vzctl", "exec", c)[0] == codes.BAD_SYNTAX
    assert run("vzctl", "exec", "12", "true")[0] == codes.BAD_VALUE


def test_exec_passes_no_inherited_descriptor_into_the_vps(run, ctid: int, env: dict[str, str], tmp_path) -> None:
    """The real command line, started with an extra open descriptor (as a careless caller would):
    the command in the VPS sees only its stdio (and the directory `ls` itself opens)."""
    import subprocess
    import sys

    create(run, ctid)
    assert run("vzctl", "start", str(ctid))[0] == 0
    secret = tmp_path / "host-secret"
    secret.write_text("host only\n")
    with open(secret) as leaked:
        proc = subprocess.run([sys.executable, "-m", "worker.cli.vzctl", "exec2", str(ctid),
                               f"ls /proc/self/fd; cat /proc/self/fd/{leaked.fileno()}"],
                              capture_output=True, env={**os.environ, **env}, pass_fds=(leaked.fileno(),),
                              timeout=60)
    assert proc.stdout.split()[:3] == [b"0", b"1", b"2"] and len(proc.stdout.split()) <= 4, proc.stdout
    assert b"host only" not in proc.stdout and proc.returncode != 0  # the cat found no such descriptor


def test_exec_as_the_program_relays_from_outside_the_vps(run, ctid: int, env: dict[str, str],
                                                        cli_runtime: Runtime) -> None:
    """Run as a program, `vzctl exec` enters the VPS itself and starts the command without a
    helper (kernel.helper.exec_here). While it relays, it is non-dumpable (the VPS's root cannot
    ptrace it or open its /proc files: they belong to the host's root; the kernel also clears
    the flag on the change of credentials, so no broken copy shows it), it has left every cgroup
    of the VPS (its command is in them), and the command's parent is outside the VPS."""
    import subprocess
    import sys

    create(run, ctid)
    assert run("vzctl", "start", str(ctid))[0] == 0
    proc = subprocess.Popen([sys.executable, "-m", "worker.cli.vzctl", "exec2", str(ctid),
                             "echo parent $PPID; read line; echo got $line; exit 4"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **env})
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"parent 0\n"
        with open(f"/proc/{proc.pid}/status") as fh:
            uid = next(line.split()[2] for line in fh if line.startswith("Uid:"))
        assert int(uid) >= 100000  # the VPS's root, as seen from the host
        assert os.stat(f"/proc/{proc.pid}/environ").st_uid == 0  # non-dumpable
        vps = f"/{cli_runtime.cgroups.prefix}/{ctid}/"
        (command,) = running.children(proc.pid)
        assert all(vps in path for path in _cgroups(command)), _cgroups(command)
        assert not any(vps in path for path in _cgroups(proc.pid)), _cgroups(proc.pid)
        out, err = proc.communicate(b"hello\n", timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert (proc.returncode, out, err) == (4, b"got hello\n", b"")


def _cgroups(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cgroup") as fh:
        return [line.strip().split(":", 2)[2] + "/" for line in fh]


def test_set_hostname_and_onboot(run, ctid: int, env: dict[str, str], cli_runtime: Runtime) -> None:
    create(run, ctid, "--hostname", "one.example.com")
    c = str(ctid)
    assert run("vzctl", "start", c)[0] == 0
    assert run("vzctl", "set", c, "--hostname", "two.example.com", "--onboot", "yes", "--save")[0] == 0
    assert run("vzctl", "exec2", c, "hostname; cat /etc/hostname")[1] == "two.example.com\n" * 2
    record = cli_runtime.registry.get(ctid)
    assert (record.hostname, record.onboot) == ("two.example.com", True)
    with open(os.path.join(env["CTPANEL_CONF_DIR"], f"{ctid}.conf"), encoding="utf-8") as fh:
        text = fh.read()
    assert 'HOSTNAME="two.example.com"' in text and 'ONBOOT="yes"' in text
    assert run("vzctl", "set", c, "--onboot", "no", "--save")[0] == 0
    assert not cli_runtime.registry.get(ctid).onboot
    assert run("vzctl", "set", c, "--hostname", "bad name")[0] == codes.BAD_HOSTNAME
    assert run("vzctl", "set", c, "--save")[0] == codes.BAD_SYNTAX
    assert run("vzctl", "set", c, "--onboot", "maybe")[0] == codes.BAD_SYNTAX


def test_a_held_lock_gives_exit_code_9(run, ctid: int, cli_runtime: Runtime) -> None:
    create(run, ctid)
    c = str(ctid)
    with cli_runtime.lock(ctid):  # another client's change in progress
        for args in (["start", c], ["destroy", c], ["mount", c], ["set", c, "--onboot", "yes"]):
            assert run("vzctl", *args)[0] == codes.LOCKED, args
        assert run("vzctl", "status", c)[0] == 0  # reading takes no lock
    assert run("vzctl", "start", c)[0] == 0
    with cli_runtime.lock(ctid):
        assert run("vzctl", "stop", c)[0] == codes.LOCKED
        assert run("vzctl", "pause", c)[0] == codes.LOCKED
        assert run("vzctl", "exec", c, "true")[0] == 0
    assert cli_runtime.status(ctid).running


def test_panel_managed_vps_is_refused_unless_forced(run, ctid: int, env: dict[str, str], cli_runtime: Runtime) -> None:
    cli_runtime.create(CreateSpec(ctid=ctid, template="busybox", panel_managed=True))
    c = str(ctid)
    drift = os.path.join(env["CTPANEL_STATE_ROOT"], "drift", f"{ctid}.json")
    for args in (["start", c], ["destroy", c], ["mount", c], ["set", c, "--onboot", "yes", "--save"]):
        code, _, err = run("vzctl", *args)
        assert code == codes.NO_ACCESS, args
        assert "panel" in err
    assert cli_runtime.registry.get(ctid).onboot is False
    assert not cli_runtime.status(ctid).running
    assert not os.path.exists(drift)

    assert run("vzctl", "start", c, "--force")[0] == 0
    assert run("vzctl", "status", c)[0] == 0  # reading, exec and enter are allowed
    assert run("vzctl", "exec2", c, "echo inside")[1] == "inside\n"
    assert run("vzctl", "stop", c)[0] == codes.NO_ACCESS
    assert run("vzctl", "stop", c, "--fast", "--force")[0] == 0
    with open(drift, encoding="utf-8") as fh:
        entries = json.load(fh)
    assert [(e["ctid"], e["command"]) for e in entries] == [(ctid, "start"), (ctid, "stop")]
    assert entries[1]["fast"] is True
    os.unlink(drift)
