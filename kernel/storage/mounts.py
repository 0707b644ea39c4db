"""Reading the host's mount table (/proc/self/mountinfo) and FIFREEZE/FITHAW."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass

from kernel import syscalls as sc
from kernel.errors import from_oserror

FIFREEZE = 0xC0045877
FITHAW = 0xC0045878


@dataclass(frozen=True)
class Mount:
    point: str
    fstype: str
    source: str
    options: str


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def table() -> list[Mount]:
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            out.append(Mount(_unescape(fields[4]), rest[0], _unescape(rest[1]), rest[2]))
    return out


def find(point: str) -> Mount | None:
    """The topmost mount at exactly `point`, or None."""
    found = None
    for mount in table():
        if mount.point == point:
            found = mount
    return found


def fstype(path: str) -> str:
    """The filesystem type of the mount that holds `path`."""
    real = os.path.realpath(path)
    best = Mount("/", "", "", "")
    for mount in table():
        if (real == mount.point or real.startswith(mount.point.rstrip("/") + "/")) and len(mount.point) >= len(
            best.point
        ):
            best = mount
    return best.fstype


def unmount(point: str) -> None:
    """Unmount every mount stacked at `point` (no lazy detach: a busy mount raises `Busy`)."""
    while find(point) is not None:
        sc.umount2(point)


@contextlib.contextmanager
def frozen_fs(point: str) -> Iterator[None]:
    """FIFREEZE the filesystem mounted at `point`: dirty data is written and writers block."""
    fd = os.open(point, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.ioctl(fd, FIFREEZE, 0)
        except OSError as exc:
            raise from_oserror(exc, f"cannot freeze the filesystem at {point}") from exc
        try:
            yield
        finally:
            fcntl.ioctl(fd, FITHAW, 0)
    finally:
        os.close(fd)
