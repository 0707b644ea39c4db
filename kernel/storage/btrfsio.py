"""btrfs through its ioctls and sysfs, without starting the `btrfs` tool.

Create, snapshot, read-only flag, subvolume id, qgroup limit, sync and the
qgroup numbers are each one ioctl (or a sysfs read), so creating a VPS costs
no process start (docs/storage.md, "Measurements"). Structures are those of
linux/btrfs.h; every path is opened O_NOFOLLOW|O_DIRECTORY.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager

from kernel.errors import KernelError, from_oserror

_MAGIC = 0x94
_VOL_ARGS = 4096  # struct btrfs_ioctl_vol_args and _v2 are both 4096 bytes
_V2_NAME = 56  # offset of name[] in btrfs_ioctl_vol_args_v2
_NAME_MAX = 255
FIRST_FREE_OBJECTID = 256  # the root directory's inode number in every subvolume
SUBVOL_RDONLY = 1 << 1
QGROUP_LIMIT_MAX_RFER = 1 << 0
_CLEAR = (1 << 64) - 1  # a limit of "none"


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (_MAGIC << 8) | nr


_W, _R = 1, 2
IOC_SYNC = _ioc(0, 8, 0)
IOC_SNAP_CREATE_V2 = _ioc(_W, 23, _VOL_ARGS)
IOC_SUBVOL_CREATE_V2 = _ioc(_W, 24, _VOL_ARGS)
IOC_SUBVOL_GETFLAGS = _ioc(_R, 25, 8)
IOC_SUBVOL_SETFLAGS = _ioc(_W, 26, 8)
IOC_INO_LOOKUP = _ioc(_R | _W, 18, 4096)
IOC_FS_INFO = _ioc(_R, 31, 1024)
IOC_QGROUP_LIMIT = _ioc(_R, 43, 48)


@contextmanager
def _opendir(path: str) -> Iterator[int]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise from_oserror(exc, f"open {path}") from None
    try:
        yield fd
    finally:
        os.close(fd)


def _ioctl(fd: int, request: int, arg: bytearray | int, what: str) -> None:
    try:
        fcntl.ioctl(fd, request, arg)
    except OSError as exc:
        raise from_oserror(exc, what) from None


def _v2(name: str, *, fd: int = 0, flags: int = 0) -> bytearray:
    raw = name.encode()
    if not raw or len(raw) > _NAME_MAX or "/" in name or name in (".", ".."):
        raise KernelError(f"bad subvolume name {name!r}", errno=errno.EINVAL)
    buf = bytearray(_VOL_ARGS)
    struct.pack_into("<qQQ", buf, 0, fd, 0, flags)
    buf[_V2_NAME : _V2_NAME + len(raw)] = raw
    return buf


def create(path: str) -> None:
    """An empty subvolume at `path` (its parent must exist)."""
    parent, name = os.path.split(path)
    with _opendir(parent) as fd:
        _ioctl(fd, IOC_SUBVOL_CREATE_V2, _v2(name), f"create subvolume {path}")


def snapshot(source: str, path: str, *, readonly: bool = False) -> None:
    """A snapshot of subvolume `source` at `path`: O(1), extents shared until written."""
    parent, name = os.path.split(path)
    with _opendir(source) as src, _opendir(parent) as fd:
        args = _v2(name, fd=src, flags=SUBVOL_RDONLY if readonly else 0)
        _ioctl(fd, IOC_SNAP_CREATE_V2, args, f"snapshot {source} to {path}")


def set_readonly(path: str, readonly: bool) -> None:
    with _opendir(path) as fd:
        buf = bytearray(8)
        _ioctl(fd, IOC_SUBVOL_GETFLAGS, buf, f"flags of {path}")
        flags = struct.unpack("<Q", buf)[0]
        flags = flags | SUBVOL_RDONLY if readonly else flags & ~SUBVOL_RDONLY
        _ioctl(fd, IOC_SUBVOL_SETFLAGS, bytearray(struct.pack("<Q", flags)), f"set flags of {path}")


def subvolume_id(path: str) -> int:
    """The id of the subvolume `path` belongs to (its level-0 qgroup is 0/<id>)."""
    with _opendir(path) as fd:
        buf = bytearray(4096)
        struct.pack_into("<QQ", buf, 0, 0, FIRST_FREE_OBJECTID)
        _ioctl(fd, IOC_INO_LOOKUP, buf, f"subvolume of {path}")
        return int(struct.unpack_from("<Q", buf, 0)[0])


def qgroup_limit(path: str, max_rfer: int) -> None:
    """Limit the referenced bytes of `path`'s subvolume qgroup; 0 removes the limit."""
    with _opendir(path) as fd:
        buf = bytearray(48)  # qgroupid 0: the subvolume of fd; then struct btrfs_qgroup_limit
        struct.pack_into("<QQQ", buf, 0, 0, QGROUP_LIMIT_MAX_RFER, max_rfer or _CLEAR)
        _ioctl(fd, IOC_QGROUP_LIMIT, buf, f"qgroup limit of {path}")


def sync(path: str) -> None:
    """Commit the filesystem's transaction (qgroup numbers are brought up to date at commit)."""
    with _opendir(path) as fd:
        _ioctl(fd, IOC_SYNC, 0, f"sync {path}")


def fsid(path: str) -> str:
    """The filesystem's UUID, which names its directory under /sys/fs/btrfs."""
    with _opendir(path) as fd:
        buf = bytearray(1024)
        _ioctl(fd, IOC_FS_INFO, buf, f"filesystem info of {path}")
    raw = bytes(buf[16:32]).hex()
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def qgroups(path: str) -> dict[int, tuple[int, int, int]]:
    """Every level-0 qgroup of the filesystem: subvolume id -> (referenced, exclusive, referenced limit or 0)."""
    top = f"/sys/fs/btrfs/{fsid(path)}/qgroups"
    out = {}
    try:
        names = os.listdir(top)
    except FileNotFoundError:
        return out  # quota is off
    for name in names:
        level, _, ident = name.partition("_")
        if level != "0" or not ident.isdigit():
            continue
        values = _read_qgroup(os.path.join(top, name))
        if values is not None:
            out[int(ident)] = values
    return out


def qgroup(path: str, subvolume: int) -> tuple[int, int, int] | None:
    """One subvolume's level-0 qgroup, as in `qgroups` (None: no such qgroup, or quota is off)."""
    return _read_qgroup(f"/sys/fs/btrfs/{fsid(path)}/qgroups/0_{subvolume}")


def _read_qgroup(directory: str) -> tuple[int, int, int] | None:
    try:
        values = [_read_int(os.path.join(directory, f)) for f in ("referenced", "exclusive", "max_referenced")]
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENODEV):
            return None  # no such qgroup, or dropped meanwhile
        raise
    return values[0], values[1], values[2] if values[2] != _CLEAR else 0


def _read_int(path: str) -> int:
    with open(path, encoding="ascii") as fh:
        return int(fh.read())
