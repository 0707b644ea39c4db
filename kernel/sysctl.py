"""Node sysctl profile: raise limits that many VPSs share, never lower them.

A node with hundreds of VPSs needs more ptys, inotify instances, keys and
conntrack entries than a distribution's defaults (SECURITY.md, "Denial of
service"). The profile only ever raises a value: an admin who set a higher
one keeps it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kernel.errors import InvalidArgument, from_oserror

PROC_SYS = "/proc/sys"


@dataclass(frozen=True)
class SysctlChange:
    name: str
    old: int | None
    new: int | None
    note: str = ""


def parse_profile(text: str) -> dict[str, int]:
    """`name = integer` lines as in sysctl.d(5); comments and blank lines ignored."""
    profile: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        name, sep, value = (part.strip() for part in line.partition("="))
        if not sep or not name:
            raise InvalidArgument(f"sysctl profile line {number}: expected 'name = value'")
        try:
            profile[_check_name(name)] = int(value)
        except ValueError:
            raise InvalidArgument(f"sysctl profile line {number}: {value!r} is not an integer") from None
    return profile


def _check_name(name: str) -> str:
    parts = name.replace("/", ".").split(".")
    if any(not p or p in {".", ".."} or not p.replace("_", "").replace("-", "").isalnum() for p in parts):
        raise InvalidArgument(f"invalid sysctl name {name!r}")
    return ".".join(parts)


def _path(name: str, root: str) -> Path:
    return Path(root, *_check_name(name).split("."))


def read(name: str, root: str = PROC_SYS) -> str:
    path = _path(name, root)
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise from_oserror(exc, f"cannot read sysctl {name}") from exc


def write(name: str, value: str | int, root: str = PROC_SYS) -> None:
    path = _path(name, root)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            os.write(fd, f"{value}\n".encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise from_oserror(exc, f"cannot set sysctl {name}") from exc


def raise_to(profile: Mapping[str, int], root: str = PROC_SYS) -> list[SysctlChange]:
    """Raise each sysctl to at least its profile value; report what happened to each."""
    changes = []
    for name, wanted in profile.items():
        if not _path(name, root).exists():
            changes.append(SysctlChange(name, None, None, "absent on this kernel"))
            continue
        current = int(read(name, root).split()[0])
        if current >= wanted:
            changes.append(SysctlChange(name, current, current, "kept"))
            continue
        write(name, wanted, root)
        changes.append(SysctlChange(name, current, int(read(name, root).split()[0]), "raised"))
    return changes
