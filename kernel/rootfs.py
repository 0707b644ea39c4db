"""The VPS's mount tree, built inside its new mount namespace before init runs.

Runs in the pre-init child (already in the VPS's user, mount and PID
namespaces). Every mount target is resolved descriptor by descriptor from
the root's dirfd with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS: a symlink the
VPS planted where a mount point should be makes the start fail instead of
diverting the mount. Mask sources (the host's /dev/null, fresh read-only
tmpfs) are made on the host side of the tree, never looked up inside it.

The masks are not MNT_LOCKED: the VPS root owns this mount namespace. They
are defence in depth over the kernel's own user-namespace checks, and they
keep /proc from being "fully visible", so the VPS cannot mount a fresh,
unmasked procfs beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
from dataclasses import dataclass

from kernel import syscalls as sc
from kernel.errors import NotFound

_BENEATH = sc.RESOLVE_BENEATH | sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_MAGICLINKS
_NOSUID_NODEV_NOEXEC = sc.MOUNT_ATTR_NOSUID | sc.MOUNT_ATTR_NODEV | sc.MOUNT_ATTR_NOEXEC

PROC_MASKED_FILES = (
    "kcore",
    "keys",
    "kallsyms",
    "timer_list",
    "sched_debug",
    "latency_stats",
    "interrupts",
)
PROC_MASKED_DIRS = ("acpi", "scsi")
PROC_READONLY = ("sys", "sysrq-trigger", "bus", "fs", "irq")
PROC_WRITABLE_UNDER_READONLY = ("sys/net",)
#: /proc files lxcfs serves per cgroup (what `free`, `top` and `uptime` read inside a VPS)
LXCFS_PROC = ("cpuinfo", "diskstats", "loadavg", "meminfo", "slabinfo", "stat", "swaps", "uptime")
SYS_MASKED_DIRS = (
    "firmware",
    "kernel/debug",
    "kernel/tracing",
    "kernel/security",
    "class/powercap",
    "devices/virtual/powercap",
)
SYS_WRITABLE = ("devices/virtual/net",)
_TIOCSPTLCK = 0x40045431
_TIOCGPTPEER = 0x5441
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {
    "ptmx": "pts/ptmx",
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
}


@dataclass(frozen=True)
class RootfsOptions:
    masks: bool = True  # False only for the negative-control tests
    cgroup2: bool = False  # mount the (namespaced) cgroup2 at /sys/fs/cgroup
    devpts_max: int = 1024


def lookup(dirfd: int, path: str, *, directory: bool = True) -> int:
    """An O_PATH fd for `path` beneath `dirfd`, refusing symlinks on the way."""
    flags = os.O_PATH | os.O_NOFOLLOW | (os.O_DIRECTORY if directory else 0)
    return sc.openat2(dirfd, path, flags, _BENEATH)


def _attach_at(mount_fd: int, dirfd: int, path: str, *, directory: bool = True) -> None:
    target = lookup(dirfd, path, directory=directory)
    try:
        sc.attach(mount_fd, target)
    finally:
        os.close(target)
        os.close(mount_fd)


def _clone(fd: int, recursive: bool = True) -> int:
    flags = sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC | sc.AT_EMPTY_PATH
    return sc.open_tree(fd, "", flags | (sc.AT_RECURSIVE if recursive else 0))


def _clone_path(dirfd: int, path: str, *, directory: bool = True) -> int | None:
    try:
        fd = lookup(dirfd, path, directory=directory)
    except NotFound:
        return None
    try:
        return _clone(fd)
    finally:
        os.close(fd)


def _readonly_bind(dirfd: int, path: str, *, directory: bool) -> None:
    """Bind `path` over itself read-only (and nosuid, nodev, noexec)."""
    try:
        target = lookup(dirfd, path, directory=directory)
    except NotFound:
        return
    try:
        clone = _clone(target)
        try:
            sc.mount_setattr(
                clone, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, attr_set=sc.MOUNT_ATTR_RDONLY | _NOSUID_NODEV_NOEXEC
            )
            sc.attach(clone, target)
        finally:
            os.close(clone)
    finally:
        os.close(target)


def _empty_tmpfs() -> int:
    return sc.new_mount(
        "tmpfs", {"size": "4k", "nr_inodes": "16", "mode": "555"}, sc.MOUNT_ATTR_RDONLY | _NOSUID_NODEV_NOEXEC
    )


def _mask_dirs(dirfd: int, paths: tuple[str, ...]) -> None:
    """An empty read-only tmpfs over each of `paths` that exists: one superblock, made for the
    first and cloned for the others (a new one costs seven syscalls)."""
    first = -1
    try:
        for path in paths:
            try:
                target = lookup(dirfd, path)
            except NotFound:
                continue
            try:
                mount_fd = _empty_tmpfs() if first < 0 else _clone(first, recursive=False)
                try:
                    sc.attach(mount_fd, target)
                except BaseException:
                    os.close(mount_fd)
                    raise
                if first < 0:
                    first = mount_fd  # attached now: it may be cloned
                else:
                    os.close(mount_fd)
            finally:
                os.close(target)
    finally:
        if first >= 0:
            os.close(first)


def _mask_file(dirfd: int, path: str, null_fd: int) -> None:
    try:
        target = lookup(dirfd, path, directory=False)
    except NotFound:
        return
    mount_fd = _clone(null_fd, recursive=False)
    try:
        sc.attach(mount_fd, target)
    finally:
        os.close(mount_fd)
        os.close(target)


def mount_proc(
    root_fd: int, options: RootfsOptions, null_fd: int, lxcfs: dict[str, int] | None = None
) -> None:
    """procfs with SECURITY.md's read-only paths and masks; `lxcfs` maps a /proc file name to
    an O_PATH fd of lxcfs's version of it, bound over the real one."""
    _attach_at(sc.new_mount("proc", {}, _NOSUID_NODEV_NOEXEC), root_fd, "proc")
    proc = lookup(root_fd, "proc")
    try:
        for name, source in (lxcfs or {}).items():
            with contextlib.suppress(NotFound):
                _attach_at(_clone(source, recursive=False), proc, name, directory=False)
        if not options.masks:
            return
        writable = {p: _clone_path(proc, p) for p in PROC_WRITABLE_UNDER_READONLY}
        for name in PROC_READONLY:
            _readonly_bind(proc, name, directory=name != "sysrq-trigger")
        for path, clone in writable.items():
            if clone is not None:
                _attach_at(clone, proc, path)
        for name in PROC_MASKED_FILES:
            _mask_file(proc, name, null_fd)
        _mask_dirs(proc, PROC_MASKED_DIRS)
    finally:
        os.close(proc)


def mount_sys(root_fd: int, options: RootfsOptions) -> None:
    _attach_at(sc.new_mount("sysfs", {}, _NOSUID_NODEV_NOEXEC), root_fd, "sys")
    sys_fd = lookup(root_fd, "sys")
    try:
        writable = {p: _clone_path(sys_fd, p) for p in SYS_WRITABLE} if options.masks else {}
        if options.cgroup2:
            _attach_at(sc.new_mount("cgroup2", {}, _NOSUID_NODEV_NOEXEC), sys_fd, "fs/cgroup")
        if not options.masks:
            return
        sc.mount_setattr(sys_fd, "", sc.AT_EMPTY_PATH, attr_set=sc.MOUNT_ATTR_RDONLY)
        for path, clone in writable.items():
            if clone is not None:
                _attach_at(clone, sys_fd, path)
        _mask_dirs(sys_fd, SYS_MASKED_DIRS)
    finally:
        os.close(sys_fd)


def mount_dev(root_fd: int, options: RootfsOptions, host_nodes: dict[str, int]) -> None:
    """A fresh tmpfs /dev holding binds of the host's harmless nodes and a private devpts.

    `host_nodes` maps a name (null, zero, ..., console) to an O_PATH fd of the host node.
    """
    _attach_at(
        sc.new_mount("tmpfs", {"mode": "755", "size": "1m", "nr_inodes": "4096"}, sc.MOUNT_ATTR_NOSUID),
        root_fd,
        "dev",
    )
    dev = lookup(root_fd, "dev")
    try:
        for name, source in host_nodes.items():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=dev)
            os.close(fd)
            _attach_at(_clone(source, recursive=False), dev, name, directory=False)
        for name in ("pts", "shm"):
            os.mkdir(name, 0o755, dir_fd=dev)
        devpts = sc.new_mount(
            "devpts",
            {"newinstance": None, "ptmxmode": "0666", "mode": "0620", "gid": "5", "max": str(options.devpts_max)},
            sc.MOUNT_ATTR_NOSUID | sc.MOUNT_ATTR_NOEXEC,
        )
        _attach_at(devpts, dev, "pts")
        shm = sc.new_mount("tmpfs", {"mode": "1777", "size": "64m"}, _NOSUID_NODEV_NOEXEC)
        _attach_at(shm, dev, "shm")
        for name, target in DEV_LINKS.items():
            os.symlink(target, name, dir_fd=dev)
    finally:
        os.close(dev)


def console_pty(root_fd: int) -> int:
    """Bind a new pty of the VPS's own devpts over /dev/console; return its master.

    The supervisor keeps the master: what init writes to its console goes to a
    buffer, never to anyone's terminal.
    """
    dev = lookup(root_fd, "dev")
    try:
        master = sc.openat2(dev, "pts/ptmx", os.O_RDWR | os.O_NOCTTY, _BENEATH)
        fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            os.close(os.open("console", flags, 0o600, dir_fd=dev))
            _attach_at(_clone(slave, recursive=False), dev, "console", directory=False)
        finally:
            os.close(slave)
        return master
    finally:
        os.close(dev)


def node_file(path: str) -> int:
    """A detached read-only (nosuid, nodev, noexec) clone of the host file `path`, served by a node
    file server (the beancounter table): cloned while the host's tree is visible, attached by
    `attach_file` where the VPS's root is this process's root."""
    fd = sc.open_tree(sc.AT_FDCWD, path, sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC)
    try:
        sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH, attr_set=sc.MOUNT_ATTR_RDONLY | _NOSUID_NODEV_NOEXEC)
    except BaseException:
        os.close(fd)
        raise
    return fd


def attach_file(mount_fd: int, path: str) -> None:
    """Attach the detached file mount `mount_fd` at `path`, resolved from this process's root (the
    VPS's: after the pivot, or chrooted into it, as the VPS's root resolves it); a missing file
    and its directories are made first, owned by the VPS's root."""
    if not os.path.lexists(path):
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444))
    sc.move_mount(mount_fd, "", sc.AT_FDCWD, path, sc.MOVE_MOUNT_F_EMPTY_PATH)


def pivot(root_fd: int) -> None:
    """Make `root_fd` the root and detach the host's tree from this mount namespace."""
    os.fchdir(root_fd)
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")
