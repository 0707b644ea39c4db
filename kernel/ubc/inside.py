"""Node-served files inside a VPS: the beancounter table and lxcfs's /proc files, bound into the
VPS's own mount namespace, at start and again into running VPSs after their server restarted.

Both are FUSE files served by node processes (`fusefile`'s server and lxcfs). At start the
pre-init binds them while it builds the VPS's mount tree (kernel/spawn.py: lxcfs's from
`Runtime(lxcfs=)`, the table from `start_hook`'s `StartContext.binds`). A bind mount keeps the
FUSE connection it was made from: when its server dies, reads fail with ENOTCONN (they never
hang) and the VPS runs on; the restarted server has a new connection, so its files are bound
again (`bind_into`), replacing the dead binds. The sources are cloned with open_tree() in the
host's mount namespace; a non-dumpable child then joins the VPS's user and mount namespaces
(as the VPS's root, no host privilege) and moves them onto the targets, made read-only,
nosuid, nodev, noexec. Mounts made in the VPS's own nested mount namespaces keep the dead
binds (documented limitation).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from kernel import rootfs
from kernel import syscalls as sc
from kernel.errors import KernelError
from kernel.ubc.fusefile import IN_VPS_PATH

if TYPE_CHECKING:
    from kernel.runtime import StartContext

def node_mount(run_dir: str) -> str:
    """Where the node's beancounter file server is mounted (one per node, under its run directory)."""
    return os.path.join(run_dir, "ubc-fs")


def fuse_mounted(path: str, mountinfo: str | None = None) -> bool:
    """Whether a FUSE filesystem is mounted at host path `path`."""
    return _fuse_count(path, mountinfo or _read("/proc/self/mountinfo")) > 0


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def _fuse_count(target: str, mountinfo: str) -> int:
    count = 0
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) > 4 and fields[4] == target and right.split()[:1] and right.split()[0].startswith("fuse"):
            count += 1
    return count


def binds(ctid: int, ubc_mount: str | None, lxcfs: str | None) -> list[tuple[str, str]]:
    """(host file, path inside VPS `ctid`) pairs of every node file server mounted now: the VPS's
    own beancounter file, lxcfs's /proc files."""
    out: list[tuple[str, str]] = []
    mountinfo = _read("/proc/self/mountinfo")
    if ubc_mount and _fuse_count(ubc_mount, mountinfo):
        out.append((os.path.join(ubc_mount, str(ctid)), IN_VPS_PATH))
    if lxcfs and _fuse_count(lxcfs, mountinfo):
        out += [(os.path.join(lxcfs, "proc", name), f"/proc/{name}") for name in rootfs.LXCFS_PROC
                if os.path.exists(os.path.join(lxcfs, "proc", name))]
    return out


def bind_into(init_pid: int, pairs: Sequence[tuple[str, str]]) -> None:
    """Bind each host file read-only over its path inside the running VPS whose init is
    `init_pid`, replacing FUSE binds already there (a dead server's)."""
    if not pairs:
        return
    stale = _read(f"/proc/{init_pid}/mountinfo")  # mount points as the VPS's init sees them
    pidfd = sc.pidfd_open(init_pid)
    # setns() puts us at the namespace's root mount, which is not the VPS's root while its
    # init still waits to exec: its own root directory is taken instead.
    root = os.open(f"/proc/{init_pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    sources: list[tuple[int, str, int]] = []
    try:
        for host, inside in pairs:
            sources.append((rootfs.node_file(host), inside, _fuse_count(inside, stale)))
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the forked child only
            code = 1
            try:
                sc.prctl(sc.PR_SET_DUMPABLE, 0)
                sc.setns(pidfd, sc.CLONE_NEWUSER | sc.CLONE_NEWNS)
                os.setresgid(0, 0, 0)
                os.setgroups([])
                os.setresuid(0, 0, 0)
                os.fchdir(root)
                os.chroot(".")
                for fd, inside, old in sources:
                    _replace(fd, inside, old)
                code = 0
            except BaseException as exc:
                with contextlib.suppress(OSError):
                    os.write(report_w, str(exc).encode()[:1000])
            finally:
                os._exit(code)
        os.close(report_w)
        _, status = os.waitpid(child, 0)
        why = os.read(report_r, 1000).decode(errors="replace")
        os.close(report_r)
    finally:
        for fd, _, _ in sources:
            os.close(fd)
        os.close(pidfd)
        os.close(root)
    if os.waitstatus_to_exitcode(status) != 0:
        raise KernelError(f"could not bind the node's files into the VPS of init {init_pid}: {why}")


def _replace(fd: int, inside: str, old: int) -> None:  # pragma: no cover - runs in the VPS's namespaces
    for _ in range(old):
        with contextlib.suppress(OSError, KernelError):
            sc.umount2(inside, sc.MNT_DETACH)
    rootfs.attach_file(fd, inside)


def start_hook(ubc_mount: str) -> Callable[[StartContext], None]:
    """The runtime's "volume" stage: the VPS's beancounter table at `IN_VPS_PATH` while its server
    runs, bound by the pre-init as it builds the VPS's mount tree (`StartContext.binds`): no
    process is forked for it. A server that is down then leaves the VPS without the file until its
    restart binds it. Nothing to undo: the bind dies with the VPS's mount namespace. An init that
    mounts a fresh /run later hides the file (systemd does unless /run is a mount point already)."""

    def hook(ctx: StartContext) -> None:
        if os.path.ismount(ubc_mount):  # a dead server's mount fails stat(): not one
            ctx.binds.append((os.path.join(ubc_mount, str(ctx.record.ctid)), IN_VPS_PATH))

    return hook
