"""The bypasses SECURITY.md names, tried from inside a VPS: a freshly mounted devpts (no `max=`)
and a fresh IPC namespace (default shm sysctls). Neither row has a kernel limit of its own; what
bounds them is the VPS's memory cgroup, and that is what these tests show."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time

import pytest

from kernel import enter
from kernel import syscalls as sc
from kernel.ubc import FastReader, Limits

pytestmark = pytest.mark.kernel
MB = 1 << 20
# In the background (a process of the VPS, its init's child once the exec'd shell ends): opens up to
# {n} pty masters from {p} on fds 10.. (stops at the first refusal), writes how many to {out}, then
# holds them in `sleep`.
HOLD = ('(i=0; while [ $i -lt {n} ]; do eval "command exec $((i+10))<>{p}" 2>/dev/null || break; '
        'i=$((i+1)); done; echo $i > {out}.new; mv {out}.new {out}; exec sleep 1000) '
        '</dev/null >/dev/null 2>&1 &')


def sh(runtime, ctid: int, script: str) -> str:
    result = runtime.exec(ctid, ["sh", "-c", script], timeout=60)
    return result.stdout.decode()


def _hold(runtime, ctid: int, ptmx: str, n: int, out: str) -> int:
    """Start a VPS process holding up to `n` ptys from `ptmx`; how many it got."""
    sh(runtime, ctid, HOLD.format(n=n, p=ptmx, out=out))
    deadline = time.monotonic() + 30
    while not (got := sh(runtime, ctid, f"cat {out} 2>/dev/null")):
        assert time.monotonic() < deadline, "the holder did not report"
        time.sleep(0.1)
    return int(got)


def _kmem(runtime, ctid: int) -> int:
    """The VPS's kernel memory once the exec helpers of `sh` have exited and it holds still: `exec`
    returns before its helper's exit, and the kernel frees an exited process's task, mm and files
    objects (charged to the VPS) only after an RCU grace period, which a loaded machine stretches."""
    enter.reap_helpers(enter.HELPER_GRACE)
    held = FastReader(runtime.cgroups).read_all([ctid])[ctid].rows["kmemsize"].held
    for _ in range(100):  # settled within a few grace periods; not bounded by the test's outcome
        time.sleep(0.02)
        held, last = FastReader(runtime.cgroups).read_all([ctid])[ctid].rows["kmemsize"].held, held
        if held == last:
            break
    return held


def test_fresh_devpts_escapes_numpty_but_is_charged_to_the_vps(limited_vps, runtime) -> None:
    ctid = limited_vps(Limits(numpty=8))
    assert _hold(runtime, ctid, "/dev/ptmx", 12, "/tmp/own") == 8  # the VPS's own devpts: max=8 holds
    # The bypass: a new devpts instance has no max= of ours, so numpty does not bind there.
    assert sh(runtime, ctid, "mkdir -p /tmp/pts && mount -t devpts -o newinstance,ptmxmode=0666 devpts /tmp/pts"
                             " && echo mounted") == "mounted\n"
    before = _kmem(runtime, ctid)
    assert _hold(runtime, ctid, "/tmp/pts/ptmx", 70, "/tmp/fresh") == 70
    # What bounds it: each pty's kernel memory is charged to the VPS's memory cgroup (so `ram`),
    # and every master is a descriptor (numfile per process, numproc processes).
    assert _kmem(runtime, ctid) - before >= 70 * 1024


SHM_HOG = 256 * MB


def start_shm_hog(runtime, ctid: int, *, repeat: bool = False) -> int:
    """A process of the VPS (its cgroups, its user namespace as root) that makes a fresh IPC
    namespace and fills a SysV segment bigger than the VPS's RAM; its PID. With `repeat`, it
    stays and fills a new segment (in a child of its own) each time the last filler ended, until
    SIGTERM, on which it kills and reaps its filler and exits."""
    init = runtime.status(ctid).init_pid
    procs = [os.path.join(p, "cgroup.procs") for p in runtime.cgroups.paths(ctid).inner.values()]
    pidfd = sc.pidfd_open(init)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs as the VPS's root
        code = 1
        try:
            for path in procs:
                with open(path, "w") as fh:
                    fh.write("0\n")
            if repeat:  # the OOM killer's victim is then the biggest of its processes: a filler
                with open("/proc/self/oom_score_adj", "w") as fh:
                    fh.write("1000\n")
            sc.setns(pidfd, sc.CLONE_NEWUSER | sc.CLONE_NEWIPC)
            os.setresgid(0, 0, 0)
            os.setgroups([])
            os.setresuid(0, 0, 0)
            sc.unshare(sc.CLONE_NEWIPC)
            with open("/proc/sys/kernel/shmmax") as fh:
                assert int(fh.read()) >= SHM_HOG  # the fresh namespace's default: no shmpages cap
            filler = 0

            def stop(*_: object) -> None:  # the filler is reaped here, not orphaned to the test
                if filler:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(filler, signal.SIGKILL)
                    os.waitpid(filler, 0)
                os._exit(0)

            signal.signal(signal.SIGTERM, stop)
            while repeat:
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # no SIGTERM between fork and note
                filler = os.fork()
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
                if filler == 0:
                    _fill_segment(rmid=True)
                os.waitpid(filler, 0)
                filler = 0
            _fill_segment(rmid=False)
        finally:
            os._exit(code)
    os.close(pidfd)
    return pid


def _fill_segment(*, rmid: bool) -> None:  # pragma: no cover - runs as the VPS's root
    """Make a SysV segment of SHM_HOG bytes and write every MiB of it; `rmid`: gone with its process."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    shmid = libc.shmget(0, ctypes.c_size_t(SHM_HOG), 0o1600)  # IPC_PRIVATE, IPC_CREAT
    addr = libc.shmat(shmid, None, 0)
    if rmid:
        libc.shmctl(shmid, 0, None)  # IPC_RMID: freed once detached, so the next filler starts empty
    for offset in range(0, SHM_HOG, MB):
        ctypes.memset(addr + offset, 1, MB)
    os._exit(0)


def test_fresh_ipc_namespace_shm_is_held_to_the_vps_ram(limited_vps, runtime) -> None:
    ctid = limited_vps(Limits(ram=64 * MB, swap=0))
    before = FastReader(runtime.cgroups).read_all([ctid])[ctid]
    _, status = os.waitpid(start_shm_hog(runtime, ctid), 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL  # the OOM killer, inside
    after = FastReader(runtime.cgroups).read_all([ctid])[ctid]
    assert after.rows["physpages"].failcnt > before.rows["physpages"].failcnt
    assert after.totals["oom_kill"] > before.totals["oom_kill"]
    assert after.rows["physpages"].maxheld <= 64 * MB
    assert sh(runtime, ctid, "echo alive") == "alive\n"
