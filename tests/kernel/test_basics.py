"""Small building blocks: errno mapping of the syscall layer, the reverter, state files."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import threading
import time

import pytest

from kernel import statefile
from kernel import syscalls as sc
from kernel.errors import Busy, InvalidArgument, NotFound
from kernel.reverter import Reverter


@pytest.mark.unit
def test_reverter_undoes_newest_first_only_on_failure():
    done: list[str] = []
    with pytest.raises(RuntimeError), Reverter() as revert:
        revert.add(lambda: done.append("a"))
        revert.add(lambda: done.append("b"))
        revert.add(lambda: 1 / 0, "broken undo is logged, not raised")
        raise RuntimeError("step failed")
    assert done == ["b", "a"]
    done.clear()
    with Reverter() as revert:
        revert.add(lambda: done.append("a"))
        revert.success()
    assert done == []


@pytest.mark.unit
def test_openat2_confines_and_maps_errors(tmp_path):
    (tmp_path / "root" / "etc").mkdir(parents=True)
    (tmp_path / "secret").write_text("host")
    os.symlink("/secret", tmp_path / "root" / "etc" / "abs")
    os.symlink("../../secret", tmp_path / "root" / "etc" / "rel")
    root = os.open(tmp_path / "root", os.O_PATH | os.O_DIRECTORY)
    try:
        for name in ("etc/abs", "etc/rel"):
            with pytest.raises(NotFound):  # resolved inside the root, where /secret does not exist
                sc.openat2(root, name, os.O_RDONLY, sc.RESOLVE_IN_ROOT)
            with pytest.raises(InvalidArgument):  # ELOOP
                sc.openat2(root, name, os.O_RDONLY, sc.RESOLVE_BENEATH | sc.RESOLVE_NO_SYMLINKS)
        with pytest.raises(InvalidArgument):  # EXDEV: '..' climbing out of BENEATH
            sc.openat2(root, "../secret", os.O_RDONLY, sc.RESOLVE_BENEATH)
        with pytest.raises(InvalidArgument):  # magic links refused
            sc.openat2(root, "/proc/self/root/etc", os.O_PATH, sc.RESOLVE_NO_MAGICLINKS)
    finally:
        os.close(root)


@pytest.mark.unit
def test_pidfd_signal_and_errors():
    proc = subprocess.Popen(["sleep", "30"])
    pidfd = sc.pidfd_open(proc.pid)
    try:
        sc.pidfd_send_signal(pidfd, signal.SIGTERM)
        assert proc.wait(5) == -signal.SIGTERM
        with pytest.raises(NotFound):  # ESRCH once reaped
            sc.pidfd_send_signal(pidfd, signal.SIGTERM)
    finally:
        os.close(pidfd)
    with pytest.raises(NotFound):
        sc.pidfd_open(2**22 + 12345)


@pytest.mark.kernel
def test_mount_api_in_a_private_mount_namespace(tmp_path):
    """new_mount + attach + mount_setattr in a child's own mount namespace (never the host's)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
            target = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
            sc.attach(sc.new_mount("tmpfs", {"size": "64k", "mode": "700"}), target)
            with open(tmp_path / "f", "w") as fh:
                fh.write("x")
            mounted = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
            sc.mount_setattr(mounted, "", sc.AT_EMPTY_PATH, attr_set=sc.MOUNT_ATTR_RDONLY)
            try:
                open(tmp_path / "g", "w").close()
            except OSError as exc:
                code = 0 if exc.errno == errno.EROFS else 4
            else:
                code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert os.listdir(tmp_path) == []  # the host never saw the tmpfs


@pytest.mark.unit
def test_state_files_are_atomic_and_locks_exclusive(tmp_path):
    path = str(tmp_path / "s.json")
    statefile.write_json(path, {"a": 1})
    assert statefile.read_json(path) == {"a": 1}
    assert os.stat(path).st_mode & 0o777 == 0o600
    with pytest.raises(NotFound):
        statefile.read_json(str(tmp_path / "missing.json"))
    lock = str(tmp_path / "x.lock")
    with statefile.flocked(lock), pytest.raises(Busy), statefile.flocked(lock, wait=False):
        pass
    with statefile.flocked(lock, wait=False):
        pass
    statefile.remove(path)
    statefile.remove(path)


@pytest.mark.unit
def test_a_lock_waited_for_a_bounded_time(tmp_path):
    """The node's daemons wait a few seconds for a VPS's lock (a brief overlap of two clients),
    then give up with Busy; vzctl (wait=False) gives up at once."""
    lock = str(tmp_path / "x.lock")
    held, letting_go = threading.Event(), threading.Event()

    def hold(seconds: float) -> None:
        with statefile.flocked(lock):
            held.set()
            time.sleep(seconds)
            letting_go.set()

    threading.Thread(target=hold, args=(0.3,)).start()
    held.wait(10)
    with statefile.flocked(lock, wait=10.0):
        assert letting_go.is_set()  # got it once the holder let go, not before
    held.clear()
    letting_go.clear()
    holder = threading.Thread(target=hold, args=(2.0,))
    holder.start()
    held.wait(10)
    with pytest.raises(Busy), statefile.flocked(lock, wait=0.2):
        pass
    assert not letting_go.is_set()  # gave up while the lock was still held
    holder.join(10)


@pytest.mark.unit
def test_a_child_forked_by_another_thread_does_not_keep_a_lock_held(tmp_path):
    """The supervisor's threads: one holds CT A's lock while another forks an init that waits for its
    exec; once the first lets go, A's lock must be free although the child still lives."""
    lock = str(tmp_path / "a.lock")
    holding, forked = threading.Event(), threading.Event()
    child: list[int] = []

    def hold() -> None:
        with statefile.flocked(lock):
            holding.set()
            forked.wait(10)

    def fork() -> None:
        holding.wait(10)
        ready, report = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child runs, then waits like an init before its exec
            os.write(report, b"x")
            time.sleep(30)
            os._exit(0)
        os.close(report)
        os.read(ready, 1)
        os.close(ready)
        child.append(pid)
        forked.set()

    threads = [threading.Thread(target=hold), threading.Thread(target=fork)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    try:
        assert child and os.waitpid(child[0], os.WNOHANG) == (0, 0)  # still alive
        with statefile.flocked(lock, wait=False):
            pass
    finally:
        os.kill(child[0], signal.SIGKILL)
        os.waitpid(child[0], 0)


@pytest.mark.unit
def test_exit_reasons_and_status_line():
    from kernel.runtime import Status, exit_reason

    assert exit_reason(None) == "unknown"
    assert exit_reason(signal.SIGHUP) == "reboot"  # a wait status: killed by SIGHUP
    assert exit_reason(signal.SIGINT) == "poweroff"
    assert exit_reason(signal.SIGKILL) == "killed"
    assert exit_reason(3 << 8) == "exited"
    assert Status(101, True, True, True).vzctl_line() == "CTID 101 exist mounted running"
    assert Status(101, False, False, False).vzctl_line() == "CTID 101 deleted unmounted down"
