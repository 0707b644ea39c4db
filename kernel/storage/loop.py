"""Loop devices through the LOOP_CTL ioctls (no losetup, no shell).

`attach` binds a file to a free loop device with LOOP_CONFIGURE and the
AUTOCLEAR flag: once the filesystem on it is unmounted everywhere (the
host's mount and every VPS mount namespace's clone) and no descriptor is
open, the kernel detaches the device by itself, so a crashed worker leaves
no loop device behind a stopped VPS.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import time

from kernel import libc
from kernel.errors import Busy, KernelError, from_oserror

LOOP_CTL_GET_FREE = 0x4C82
LOOP_CONFIGURE = 0x4C0A
LOOP_SET_CAPACITY = 0x4C07
LO_FLAGS_READ_ONLY = 1
LO_FLAGS_AUTOCLEAR = 4


class _LoopInfo64(libc.Structure):
    _fields_ = [
        ("lo_device", libc.c_uint64),
        ("lo_inode", libc.c_uint64),
        ("lo_rdevice", libc.c_uint64),
        ("lo_offset", libc.c_uint64),
        ("lo_sizelimit", libc.c_uint64),
        ("lo_number", libc.c_uint32),
        ("lo_encrypt_type", libc.c_uint32),
        ("lo_encrypt_key_size", libc.c_uint32),
        ("lo_flags", libc.c_uint32),
        ("lo_file_name", libc.c_uint8 * 64),
        ("lo_crypt_name", libc.c_uint8 * 64),
        ("lo_encrypt_key", libc.c_uint8 * 32),
        ("lo_init", libc.c_uint64 * 2),
    ]


class _LoopConfig(libc.Structure):
    _fields_ = [
        ("fd", libc.c_uint32),
        ("block_size", libc.c_uint32),
        ("info", _LoopInfo64),
        ("reserved", libc.c_uint64 * 8),
    ]


def attach(path: str, *, read_only: bool = False) -> tuple[str, int]:
    """Bind `path` to a free loop device; return its name and an open fd the caller closes.

    Keep the fd open until the filesystem is mounted: AUTOCLEAR detaches on last close.
    """
    backing = os.open(path, (os.O_RDONLY if read_only else os.O_RDWR) | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
        try:
            for _ in range(32):  # another process may take the free device first
                number = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
                device = f"/dev/loop{number}"
                fd = os.open(device, (os.O_RDONLY if read_only else os.O_RDWR) | os.O_CLOEXEC)
                config = _LoopConfig()
                config.fd = backing
                config.info.lo_flags = LO_FLAGS_AUTOCLEAR | (LO_FLAGS_READ_ONLY if read_only else 0)
                name = os.fsencode(os.path.basename(path))[:63]
                config.info.lo_file_name[: len(name)] = name
                try:
                    fcntl.ioctl(fd, LOOP_CONFIGURE, config)
                except OSError as exc:
                    os.close(fd)
                    if exc.errno == errno.EBUSY:
                        continue
                    raise from_oserror(exc, f"cannot attach {path} to {device}") from exc
                return device, fd
        finally:
            os.close(ctl)
    except OSError as exc:
        raise from_oserror(exc, "cannot set up a loop device") from exc
    finally:
        os.close(backing)
    raise Busy("no free loop device after 32 attempts")


def devices_of(path: str) -> list[str]:
    """Loop devices whose backing file is `path` (sysfs' backing_file)."""
    target = os.path.realpath(path)
    found = []
    for entry in glob.glob("/sys/block/loop*/loop/backing_file"):
        with contextlib.suppress(OSError), open(entry, encoding="utf-8", errors="replace") as fh:
            backing = fh.read().strip()
            if backing == target or backing == f"{target} (deleted)":
                found.append("/dev/" + entry.split("/")[3])
    return sorted(found)


def set_capacity(device: str) -> None:
    """Tell the loop device its backing file changed size (online grow)."""
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, LOOP_SET_CAPACITY, 0)
    except OSError as exc:
        raise from_oserror(exc, f"cannot resize {device}") from exc
    finally:
        os.close(fd)


def wait_detached(path: str, timeout: float = 10.0) -> None:
    """Wait until no loop device is backed by `path` (AUTOCLEAR acts when the last user leaves)."""
    deadline = time.monotonic() + timeout
    while devices_of(path):
        if time.monotonic() > deadline:
            raise KernelError(f"loop device of {path} still attached: {', '.join(devices_of(path))}")
        time.sleep(0.02)
