"""The node supervisor with real busybox VPSs: parenting, reboot/poweroff inside, consoles,
re-adoption after kill -9, onboot, the root-only socket."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time

import pytest

from kernel.errors import Busy, PermissionDenied
from kernel.runtime import Runtime
from tests.kernel.supervisor.conftest import SupervisorProcess, read_until
from worker.supervisor import protocol

pytestmark = pytest.mark.kernel


def ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rpartition(")")[2].split()[1])


def wait_for(predicate, what: str, limit: float = 30.0):
    deadline = time.monotonic() + limit
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_start_makes_the_supervisor_the_parent_of_init(supervisor: SupervisorProcess, make_vps) -> None:
    ctid = make_vps(start=False)
    status = supervisor.client.start(ctid)
    assert status["running"] and status["console"]
    assert ppid(status["init_pid"]) == supervisor.proc.pid
    assert supervisor.client.start(ctid)["init_pid"] == status["init_pid"]  # ensure: no-op
    assert [s["ctid"] for s in supervisor.client.list()] == [ctid]
    stopped = supervisor.client.stop(ctid, fast=True)
    assert not stopped["running"] and stopped["init_pid"] is None


def spawners(parent: int) -> set[int]:
    """The children of `parent` that run kernel.spawn's spawner."""
    children = set()
    for task in os.listdir(f"/proc/{parent}/task"):
        with contextlib.suppress(FileNotFoundError), open(f"/proc/{parent}/task/{task}/children") as fh:
            children.update(map(int, fh.read().split()))  # a thread may end meanwhile
    found = set()
    for pid in children:
        with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/cmdline", "rb") as cmd:
            if b"kernel.spawn" in cmd.read():
                found.add(pid)
    return found


def test_the_supervisor_has_its_spawner_ready_and_its_first_start_uses_it(supervisor: SupervisorProcess,
                                                                           make_vps) -> None:
    ready = spawners(supervisor.proc.pid)
    assert len(ready) == 1, "no spawner started with the supervisor"
    status = supervisor.client.start(make_vps(start=False))
    assert status["running"] and spawners(supervisor.proc.pid) == ready


def test_reboot_inside_starts_a_new_init(supervisor: SupervisorProcess, make_vps, runtime: Runtime) -> None:
    ctid = make_vps(start=False, hostname="boot.example.com")
    first = supervisor.client.start(ctid)["init_pid"]
    with supervisor.client.console(ctid) as console:  # stays attached across the reboot
        runtime.exec(ctid, ["reboot"], timeout=30)
        status = wait_for(lambda: (s := supervisor.client.status(ctid))["running"] and s["init_pid"] != first and s,
                          "a new init")
        assert ppid(status["init_pid"]) == supervisor.proc.pid
        assert runtime.exec(ctid, ["true"], timeout=30).returncode == 0
        runtime.exec(ctid, ["sh", "-c", "echo second-boot-$((6*7)) > /dev/console"], timeout=30)
        read_until(console, b"second-boot-42")


def test_poweroff_inside_leaves_the_vps_stopped(supervisor: SupervisorProcess, make_vps, runtime: Runtime) -> None:
    ctid = make_vps(start=False)
    pid = supervisor.client.start(ctid)["init_pid"]
    runtime.exec(ctid, ["poweroff"], timeout=30)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), "init to be reaped")
    wait_for(lambda: not os.path.exists(os.path.join(runtime.config.run_dir, f"{ctid}.json")), "clean-up")
    time.sleep(1.5)  # a wrong restart would happen within the supervisor's tick
    assert not supervisor.client.status(ctid)["running"]


def test_a_second_change_while_one_runs_is_busy(supervisor: SupervisorProcess, make_vps, runtime: Runtime) -> None:
    ctid = make_vps(start=False)
    supervisor.client.start(ctid)
    with runtime.lock(ctid), pytest.raises(Busy):
        supervisor.client.stop(ctid)
    assert supervisor.client.status(ctid)["running"]


def test_kill_9_leaves_vpss_running_and_a_new_supervisor_adopts_them(
    supervisor: SupervisorProcess, make_vps, runtime: Runtime
) -> None:
    ctids = [make_vps(start=False, hostname=f"sup{i}.example.com") for i in range(5)]
    pids = {ctid: supervisor.client.start(ctid)["init_pid"] for ctid in ctids}
    supervisor.kill()
    assert {ctid: runtime.status(ctid).init_pid for ctid in ctids} == pids
    for ctid in ctids:
        assert runtime.exec(ctid, ["true"], timeout=30).returncode == 0
    supervisor.start()
    listed = {s["ctid"]: s for s in supervisor.client.list()}
    assert {ctid: listed[ctid]["init_pid"] for ctid in ctids} == pids
    assert all(listed[ctid]["console"] for ctid in ctids)
    with supervisor.client.console(ctids[2]) as console:
        read_until(console, b"sup2.example.com", send=b"hostname\n")
    # the adopted VPS still reboots into a new init under the new supervisor
    runtime.exec(ctids[0], ["reboot"], timeout=30)
    wait_for(lambda: (s := supervisor.client.status(ctids[0]))["running"] and s["init_pid"] != pids[ctids[0]],
             "a new init after reboot")
    os.waitpid(pids[ctids[0]], 0)  # the old init was orphaned to pytest (the session's subreaper), not to PID 1


def test_poweroff_inside_an_adopted_vps_leaves_it_stopped_even_when_pid_1_reaps_at_once(
    supervisor: SupervisorProcess, make_vps, runtime: Runtime
) -> None:
    """After a supervisor restart an init's parent is PID 1 (or a subreaper above), which reaps
    it at once under systemd: the supervisor reads the wait status from its pidfd (Linux >= 6.15)
    and tells poweroff from reboot, instead of restarting a VPS its customer powered off."""
    import threading

    ctid = make_vps(start=False)
    pid = supervisor.client.start(ctid)["init_pid"]
    supervisor.kill()
    supervisor.start()
    assert supervisor.client.status(ctid)["init_pid"] == pid  # adopted
    reaped: list[int] = []  # the orphaned init is pytest's now (the session's subreaper): reap as systemd does
    threading.Thread(target=lambda: reaped.append(os.waitpid(pid, 0)[1]), daemon=True).start()
    runtime.exec(ctid, ["poweroff"], timeout=30)
    wait_for(lambda: reaped, "the init reaped by its new parent")
    wait_for(lambda: not os.path.exists(os.path.join(runtime.config.run_dir, f"{ctid}.json")), "clean-up")
    time.sleep(1.5)  # a wrong restart would happen within the supervisor's tick
    assert not supervisor.client.status(ctid)["running"]


def test_console_output_while_detached_is_kept(supervisor: SupervisorProcess, make_vps, runtime: Runtime) -> None:
    ctid = make_vps(start=False, hostname="cons.example.com")
    supervisor.client.start(ctid)
    with supervisor.client.console(ctid) as console:
        read_until(console, b"cons.example.com", send=b"hostname\n")
    runtime.exec(ctid, ["sh", "-c", "echo detached-marker-$((6*7)) > /dev/console"], timeout=30)
    wait_for(lambda: supervisor.client.status(ctid)["console_buffered"] > 0, "buffered output")
    with supervisor.client.console(ctid) as console:
        read_until(console, b"detached-marker-42")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def test_console_buffer_is_bounded(supervisor: SupervisorProcess, make_vps, runtime: Runtime) -> None:
    ctid = make_vps(start=False)
    supervisor.client.start(ctid)
    before = rss_kib(supervisor.proc.pid)
    flood = "i=0; while [ $i -lt 64 ]; do head -c 1048576 /dev/zero | tr '\\0' x > /dev/console; i=$((i+1)); done"
    assert runtime.exec(ctid, ["sh", "-c", flood], timeout=300).returncode == 0
    status = wait_for(lambda: (s := supervisor.client.status(ctid))["console_buffered"] == 64 * 1024 and s,
                      "a full ring")
    assert status["console_buffered"] == 64 * 1024
    assert rss_kib(supervisor.proc.pid) - before < 16 * 1024  # 64 MiB went through
    with supervisor.client.console(ctid) as console:
        console.settimeout(5)
        got = b""
        while len(got) < 64 * 1024:
            got += console.recv(65536)
        assert set(got[:64 * 1024]) <= {ord("x")}


def test_a_non_root_client_is_refused(node_config, subreaper) -> None:
    # The real socket sits in a 0700 directory with mode 0600. Here it is deliberately opened
    # up (a world-searchable directory, mode 0666) so the peer-credential check itself refuses.
    door = tempfile.mkdtemp(dir="/dev/shm")
    os.chmod(door, 0o755)  # noqa: S103
    sup = SupervisorProcess(node_config, path=os.path.join(door, "sock"))
    sup.start()
    try:
        os.chmod(sup.path, 0o666)  # noqa: S103
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: nobody
            try:
                os.close(read_fd)
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(sup.path)
                sock.sendall(protocol.encode({"v": protocol.VERSION, "op": "list"}))
                os.write(write_fd, protocol.read_line(sock) or b"(connection closed without a reply)")
            except BaseException as exc:
                os.write(write_fd, f"child: {exc!r}".encode())
            finally:
                os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as fh:
            reply = fh.read()
        os.waitpid(pid, 0)
        message = protocol.decode(reply)
        assert not message["ok"] and message["error"] == PermissionDenied.__name__, reply
        assert sup.client.list() == []  # root is served
    finally:
        sup.stop()
        shutil.rmtree(door, ignore_errors=True)


def test_another_protocol_version_is_refused_and_changes_nothing(supervisor: SupervisorProcess, make_vps) -> None:
    ctid = make_vps(start=False)
    for version in (protocol.VERSION + 1, 0, "1", None):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(supervisor.path)
            sock.sendall(protocol.encode({"v": version, "op": "start", "ctid": ctid}))
            reply = protocol.decode(protocol.read_line(sock))
        assert not reply["ok"] and reply["error"] == "InvalidArgument", reply
        assert "unsupported protocol version" in reply["message"]
    assert not supervisor.client.status(ctid)["running"]


def test_onboot_vpss_start_with_the_supervisor(node_config, make_vps, runtime: Runtime, subreaper) -> None:
    on, off = make_vps(start=False), make_vps(start=False)
    runtime.set_onboot(on, True)
    sup = SupervisorProcess(node_config)
    sup.start()
    try:
        status = wait_for(lambda: (s := sup.client.status(on))["running"] and s, "the onboot VPS")
        assert ppid(status["init_pid"]) == sup.proc.pid
        assert not sup.client.status(off)["running"]
    finally:
        sup.stop()
