"""The VPS lifecycle through the library API, with a real busybox VPS."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import subprocess
import sys
import time

import pytest

from kernel import enter, statefile, vpsfiles
from kernel.errors import AlreadyExists, Busy, InvalidArgument, KernelError, NotFound
from kernel.runtime import CreateSpec, Runtime, StartContext, StartOptions
from tests.kernel import leftovers

pytestmark = pytest.mark.kernel


def sh(runtime: Runtime, ctid: int, script: str) -> tuple[int, str]:
    result = runtime.exec(ctid, ["sh", "-c", script], timeout=30)
    return result.returncode, (result.stdout + result.stderr).decode()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_create_start_exec_stop_destroy(runtime, make_vps):
    ctid = make_vps(start=False, hostname="before.example.com")
    assert runtime.status(ctid).vzctl_line() == f"CTID {ctid} exist unmounted down"
    status = runtime.start(ctid)
    assert status.running and status.init_pid
    assert runtime.status(ctid).vzctl_line() == f"CTID {ctid} exist mounted running"
    assert runtime.start(ctid).init_pid == status.init_pid  # ensure: already running
    runtime.set_hostname(ctid, "web1.example.com")  # live: UTS name and files
    code, out = sh(runtime, ctid, "hostname; cat /etc/hostname; echo $$; ps -o pid,comm")
    assert code == 0
    lines = out.split()
    assert lines[:2] == ["web1.example.com", "web1.example.com"]
    assert "1" in lines and "init" in lines
    assert runtime.exec(ctid, ["false"]).returncode == 1
    assert runtime.exec(ctid, ["cat"], input=b"round trip").stdout == b"round trip"
    with pytest.raises(NotFound):
        runtime.exec(ctid, ["/no/such/command"])
    with pytest.raises(Busy):
        runtime.destroy(ctid)
    started = time.monotonic()
    stopped = runtime.stop(ctid, timeout=20)  # busybox init's own shutdown: about 2 s
    assert not stopped.running
    assert time.monotonic() - started < 10
    assert runtime.stop(ctid).running is False  # ensure: already stopped
    with pytest.raises(NotFound):
        runtime.exec(ctid, ["true"])
    runtime.destroy(ctid)
    assert runtime.status(ctid).vzctl_line() == f"CTID {ctid} deleted unmounted down"
    assert leftovers.of(runtime, ctid) == []


def test_fast_stop_kills_everything(runtime, make_vps):
    ctid = make_vps()
    sh(runtime, ctid, "for i in 1 2 3; do sleep 600 >/dev/null 2>&1 & done; true")
    pids = runtime.cgroups.pids(ctid)
    assert len(pids) >= 4
    started = time.monotonic()
    runtime.stop(ctid, fast=True)
    assert time.monotonic() - started < 2
    assert not [pid for pid in pids if alive(pid)]
    assert not runtime.cgroups.exists(ctid)


def test_a_fast_stop_ends_sessions_whose_helper_does_not_reap(runtime, make_vps):
    """A session's helper lives outside the VPS's cgroups: killing the cgroup leaves it, and while
    it does not reap its killed command, the dying init cannot finish. Stop kills such helpers."""
    import signal
    import threading

    ctid = make_vps()
    session = runtime.spawn(ctid, ["sleep", "1000"], tty=True)
    assert session.command_pid(timeout=10)
    os.kill(session.pid, signal.SIGSTOP)  # a helper that will not reap (stopped, or busy elsewhere)
    stopped = threading.Event()
    threading.Thread(target=lambda: (runtime.stop(ctid, fast=True), stopped.set()), daemon=True).start()
    try:
        assert stopped.wait(30), "stop waited for the session's helper"
        assert not runtime.status(ctid).running
    finally:
        with contextlib.suppress(OSError):
            os.kill(session.pid, signal.SIGKILL)
        session.close()
        with contextlib.suppress(KernelError, ChildProcessError):
            session.wait()


def test_closing_sessions_leaves_no_zombie_to_a_subreaper(runtime, make_vps):
    """Closing a session kills its command and leaves the reap to the session's helper. Killing
    both at once would orphan the command to the nearest subreaper (this test process, as pytest
    was for the console relay), which does not reap it, and the VPS's init could never finish."""
    ctid = make_vps()
    child = os.fork()
    if child == 0:  # a caller that is not a subreaper, as the console relay
        code = 1
        try:
            for _ in range(10):
                session = runtime.spawn(ctid, ["sleep", "1000"], tty=True)
                assert session.command_pid(timeout=10)
                session.kill()
                session.close()
                session.wait()
            code = 0
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0
    # An orphan is reparented while its helper exits, so before the child's wait() returned.
    strays = [pid for pid in _children() if len(nspids := _nspids(pid)) > 1 and nspids[-1] != "1"]  # not inits
    assert not runtime.stop(ctid, fast=True).running  # reaps any stray, as the supervisor would
    assert strays == []


def test_exec_takes_the_code_from_its_helper_and_leaves_no_helper_unreaped(runtime, make_vps):
    """exec returns on the helper's report of the command's code, without waiting for the helper's
    own exit; the helper (running as the VPS's root) is reaped all the same, with no further call."""
    ctid = make_vps()
    id_start = runtime.registry.get(ctid).id_start
    assert [runtime.exec(ctid, ["sh", "-c", f"exit {code}"]).returncode for code in (3, 0, 130)] == [3, 0, 130]
    assert enter.reap_helpers(10) == 0
    zombies = [pid for pid in _children() if _status(pid).get("State", "").startswith("Z")
               and id_start <= int(_status(pid).get("Uid", "0").split()[1]) < id_start + 65536]
    assert zombies == []


def _status(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return {key: value.strip() for key, _, value in (line.partition(":") for line in fh)}
    except OSError:
        return {}


def _children() -> list[int]:
    children = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as fh:
            children += [int(pid) for pid in fh.read().split()]
    return children


def _nspids(pid: int) -> list[str]:
    """The PIDs of `pid` from the host's namespace inwards (one, for a host process); [] if gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next((line.split()[1:] for line in fh if line.startswith("NSpid:")), [])
    except OSError:
        return []


def test_halt_timeout_falls_back_to_kill(runtime, make_vps):
    ctid = make_vps()
    runtime.registry.put(runtime.registry.get(ctid).__class__(
        **{**runtime.registry.get(ctid).__dict__, "halt_signal": "SIGWINCH"}))  # init ignores it
    started = time.monotonic()
    assert not runtime.stop(ctid, timeout=0.3).running
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(("command", "reason"), [("poweroff", "poweroff"), ("reboot", "reboot")])
def test_poweroff_and_reboot_inside_are_told_apart(runtime, make_vps, command, reason):
    ctid = make_vps()
    pid = runtime.status(ctid).init_pid
    assert runtime.collect(ctid) is None  # still running
    runtime.exec(ctid, [command])
    leftovers.wait_exit(pid)
    assert not runtime.status(ctid).running
    ended = runtime.collect(ctid)
    assert ended is not None and ended.reason == reason
    assert leftovers.of(runtime, ctid) == ["registry entry", "id range", "volume"]
    assert runtime.collect(ctid) is None
    assert runtime.start(ctid).init_pid != pid  # the supervisor's answer to "reboot"


def test_freeze_and_thaw(runtime, make_vps):
    ctid = make_vps()
    runtime.freeze(ctid)
    assert runtime.status(ctid).frozen
    with pytest.raises(Busy):
        runtime.exec(ctid, ["true"])  # it would freeze with the VPS
    runtime.thaw(ctid)
    assert not runtime.status(ctid).frozen
    assert sh(runtime, ctid, "echo alive") == (0, "alive\n")
    runtime.freeze(ctid)
    assert not runtime.stop(ctid, fast=True).running  # a frozen VPS can still be stopped


def test_lock_is_shared_and_refuses_a_second_change(runtime, make_vps):
    ctid = make_vps(start=False)
    with runtime.lock(ctid), pytest.raises(Busy):
        runtime.start(ctid)
    assert not runtime.status(ctid).running


def test_create_refuses_duplicates_and_bad_input(runtime, make_vps):
    ctid = make_vps(start=False)
    with pytest.raises(AlreadyExists):
        runtime.create(CreateSpec(ctid=ctid, template="busybox"))
    with pytest.raises(NotFound):
        runtime.create(CreateSpec(ctid=ctid + 50000, template="no-such-template"))
    with pytest.raises(InvalidArgument):
        runtime.create(CreateSpec(ctid=ctid + 50001, template="busybox", hostname="bad_name"))
    assert leftovers.of(runtime, ctid + 50000) == []


def test_hooks_run_in_order_with_the_namespaces_ready(node_config, subreaper, make_vps):
    seen: list[tuple[str, int]] = []
    host_net = os.readlink("/proc/self/ns/net")

    def hook(stage):
        def record(ctx: StartContext) -> None:
            seen.append((stage, ctx.init_pid))
            if stage == "network":
                assert os.readlink(f"{ctx.ns_dir}/net") != host_net
        return record

    stages = ("volume", "network", "files", "limits", "started")
    runtime = Runtime(node_config, hooks={s: [hook(s)] for s in stages})
    ctid = make_vps(start=False)
    status = runtime.start(ctid)
    assert [s for s, _ in seen] == list(stages)
    assert seen[0][1] == 0 and {p for _, p in seen[1:]} == {status.init_pid}
    runtime.stop(ctid, fast=True)


@pytest.mark.parametrize("stage", ["volume", "network", "files", "limits", "started"])
def test_a_failing_step_leaves_nothing_half_made(node_config, subreaper, make_vps, stage):
    calls = []

    def boom(ctx: StartContext) -> None:
        calls.append(stage)
        if len(calls) == 1:
            raise KernelError(f"boom in {stage}")

    runtime = Runtime(node_config, hooks={stage: [boom]})
    ctid = make_vps(start=False)
    with pytest.raises(KernelError, match="boom"):
        runtime.start(ctid, StartOptions(timeout=5))
    assert not runtime.status(ctid).running
    assert leftovers.of(runtime, ctid) == ["registry entry", "id range", "volume"]
    assert runtime.start(ctid).running  # and it starts fine afterwards


def test_missing_mount_points_are_made_again(runtime, make_vps):
    ctid = make_vps(start=False)
    volume = runtime.volume_path(ctid)
    for name in ("proc", "sys"):
        os.rmdir(os.path.join(volume, name))
    assert runtime.start(ctid).running
    assert sh(runtime, ctid, "test -f /proc/1/status && test -d /sys/class")[0] == 0


def test_a_planted_mount_point_symlink_fails_the_start_safely(runtime, make_vps, tmp_path):
    ctid = make_vps(start=False)
    volume = runtime.volume_path(ctid)
    os.rmdir(os.path.join(volume, "proc"))
    os.symlink(str(tmp_path), os.path.join(volume, "proc"))
    with pytest.raises(KernelError):
        runtime.start(ctid)
    assert os.listdir(tmp_path) == []
    assert leftovers.of(runtime, ctid) == ["registry entry", "id range", "volume"]


def test_defences_cannot_be_switched_off_outside_tests(runtime, make_vps, monkeypatch):
    from kernel.runtime import Defences

    monkeypatch.delenv("CTPANEL_UNSAFE_TESTING", raising=False)
    ctid = make_vps(start=False)
    with pytest.raises(InvalidArgument):
        runtime.start(ctid, StartOptions(defences=Defences(seccomp=False)))


def test_cycles_leave_nothing_behind(runtime):
    ctid = 990
    try:
        for _ in range(30):
            id_start = runtime.create(CreateSpec(ctid=ctid, template="busybox")).id_start
            assert runtime.start(ctid).running
            assert leftovers.processes(id_start)
            runtime.stop(ctid, fast=True)
            runtime.destroy(ctid)
            assert leftovers.of(runtime, ctid, id_start) == []
    finally:
        leftovers.force_remove(runtime, ctid)
    assert os.listdir(runtime.config.private_dir) == [] or all(
        not n.startswith("990") for n in os.listdir(runtime.config.private_dir)
    )


def test_console_is_a_pty_of_the_vps_whose_master_the_caller_holds(runtime, make_vps):
    ctid = make_vps(start=False)
    with vpsfiles.VpsRoot(runtime.volume_path(ctid)) as root:
        root.write("/etc/rc.local", "#!/bin/sh\necho hello-console > /dev/console\n", mode=0o755)
    status = runtime.start(ctid, StartOptions(console="pty"))
    assert status.console_fd is not None
    master = status.console_fd
    try:
        output = b""
        deadline = time.monotonic() + 10
        while b"hello-console" not in output and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                output += os.read(master, 4096)
        assert b"hello-console" in output
        pid = status.init_pid
        assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/console"
        _, out = sh(runtime, ctid, "grep ' /dev/console ' /proc/self/mountinfo | sed 's/.* - //'; ls /dev/pts")
        assert out.split()[0] == "devpts" and "0" in out.split()
    finally:
        os.close(master)
    assert runtime.status(ctid).console_fd is None


def test_mount_shows_the_root_idmapped_into_the_vps_range(runtime, make_vps):
    ctid = make_vps(start=False)
    id_start = runtime.registry.get(ctid).id_start
    status = runtime.mount(ctid)
    assert status.mounted and not status.running
    assert runtime.status(ctid).vzctl_line() == f"CTID {ctid} exist mounted down"
    root = runtime.root_path(ctid)
    assert os.stat(f"{root}/bin/busybox").st_uid == id_start  # not host root
    assert os.stat(runtime.volume_path(ctid) + "/bin/busybox").st_uid == 0  # on disk: the VPS's 0
    with pytest.raises(OSError):
        open(f"{root}/etc/created-by-host-root", "w").close()  # host uid 0 is not in the mapping
    assert runtime.mount(ctid).mounted  # idempotent
    runtime.start(ctid)
    assert sh(runtime, ctid, "echo inside > /root/f; cat /root/f")[1] == "inside\n"
    with open(f"{root}/root/f") as fh:
        assert fh.read() == "inside\n"
    runtime.stop(ctid, fast=True)
    assert runtime.status(ctid).mounted
    assert not runtime.umount(ctid).mounted
    assert not os.path.exists(root)
    runtime.mount(ctid)
    runtime.destroy(ctid)  # unmounts first
    assert not os.path.exists(root)


WORKER = """
import json, os, sys, time
from kernel.config import NodeConfig
from kernel.runtime import Runtime
config = NodeConfig(**json.loads(sys.argv[1]))
rt = Runtime(config)
for ctid in json.loads(sys.argv[2]):
    rt.start(ctid)
print("started", flush=True)
time.sleep(600)
"""


def test_vpss_outlive_the_process_that_started_them(runtime, make_vps):
    ctids = [make_vps(start=False) for _ in range(3)]
    config = json.dumps(dataclasses.asdict(runtime.config))
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, config, json.dumps(ctids)],
        stdout=subprocess.PIPE,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline() == b"started\n"
        pids = [runtime.status(ctid).init_pid for ctid in ctids]
        assert all(pids)
    finally:
        worker.kill()
        worker.wait()
    for ctid, pid in zip(ctids, pids, strict=True):
        status = runtime.status(ctid)
        assert status.running and status.init_pid == pid  # same init, re-found from the state file
        assert sh(runtime, ctid, "echo still here")[1] == "still here\n"
        assert not runtime.stop(ctid, fast=True).running


def test_reconcile_removes_leftovers_and_keeps_running_vpss(runtime, make_vps):
    running, stopped = make_vps(), make_vps(start=False)
    orphan = 970
    runtime.cgroups.ensure(stopped)  # as if a start crashed after making cgroups
    statefile.write_json(os.path.join(runtime.config.run_dir, f"{stopped}.json"), {"init_pid": 4194303, "starttime": 0})
    runtime.cgroups.ensure(orphan)  # a CTID this node does not register any more
    runtime.ids.allocate(orphan)
    try:
        done = runtime.reconcile()
        assert f"CT {stopped}: removed stale cgroups" in done
        assert f"CT {stopped}: removed stale runtime state" in done
        assert f"CT {orphan}: removed stale cgroups" in done
        assert f"CT {orphan}: released unused id range" in done
        assert not runtime.cgroups.exists(stopped) and not runtime.cgroups.exists(orphan)
        assert runtime.status(running).running and runtime.cgroups.exists(running)
        assert runtime.reconcile() == []
    finally:
        leftovers.force_remove(runtime, orphan)


CRASHING_WORKER = """
import json, sys, time
from kernel.config import NodeConfig
from kernel.runtime import Runtime

def hang(ctx):
    print("in-limits", ctx.init_pid, flush=True)
    time.sleep(600)

Runtime(NodeConfig(**json.loads(sys.argv[1])), hooks={"limits": [hang]}).start(int(sys.argv[2]))
"""


def test_a_worker_killed_mid_start_leaves_nothing_that_reconcile_cannot_clear(runtime, make_vps):
    ctid = make_vps(start=False)
    id_start = runtime.registry.get(ctid).id_start
    worker = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WORKER, json.dumps(dataclasses.asdict(runtime.config)), str(ctid)],
        stdout=subprocess.PIPE,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    try:
        assert worker.stdout is not None
        line = worker.stdout.readline().split()
        assert line[0] == b"in-limits"
        waiting_init = int(line[1])
    finally:
        worker.kill()
        worker.wait()
    # The waiting init sees its parent's socket close and exits; pytest, the subreaper here (the
    # supervisor on a node), collects it.
    deadline = time.monotonic() + 10
    while True:
        try:
            if os.waitpid(waiting_init, os.WNOHANG)[0] == waiting_init:
                break
        except ChildProcessError:
            pass  # not reparented to us yet: its own parent is still exiting
        assert time.monotonic() < deadline, "the waiting init did not exit"
        time.sleep(0.02)
    assert leftovers.processes(id_start) == []
    assert not runtime.status(ctid).running
    assert f"CT {ctid}: removed stale cgroups" in runtime.reconcile()
    assert leftovers.of(runtime, ctid) == ["registry entry", "id range", "volume"]
    assert runtime.start(ctid).running
