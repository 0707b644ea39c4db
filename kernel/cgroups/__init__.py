"""Cgroup drivers: pick the one matching how this host mounts cgroups."""

from __future__ import annotations

from kernel.cgroups.base import INNER, CgroupDriver, CgroupPaths
from kernel.cgroups.fs import CgroupFS, RealFS
from kernel.cgroups.v1 import V1Driver
from kernel.cgroups.v2 import V2Driver
from kernel.errors import NotSupported

__all__ = [
    "INNER",
    "CgroupDriver",
    "CgroupFS",
    "CgroupPaths",
    "RealFS",
    "V1Driver",
    "V2Driver",
    "detect",
    "parse_mounts",
]


def parse_mounts(mountinfo: str) -> tuple[str | None, dict[str, str], str | None]:
    """From /proc/self/mountinfo: (v2 mount at /sys/fs/cgroup, v1 hierarchies, hybrid cgroup2)."""
    v1: dict[str, str] = {}
    pure: str | None = None
    hybrid: str | None = None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        point, fstype = fields[4], rfields[0]
        if fstype == "cgroup2":
            if point == "/sys/fs/cgroup":
                pure = point
            elif hybrid is None:
                hybrid = point
        elif fstype == "cgroup":
            opts = rfields[2].split(",")
            names = [o for o in opts if o not in ("rw", "ro") and not o.startswith("release_agent")]
            names = [o for o in names if o not in ("clone_children", "noprefix", "cpuset_v2_mode")]
            if names:
                v1[",".join(names)] = point
    return pure, v1, hybrid


def detect(prefix: str, fs: CgroupFS | None = None, mountinfo: str | None = None) -> CgroupDriver:
    """The driver for this host's cgroup layout."""
    if mountinfo is None:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            mountinfo = fh.read()
    pure, v1, hybrid = parse_mounts(mountinfo)
    if pure:
        return V2Driver(prefix, pure, fs)
    if v1:
        return V1Driver(prefix, v1, hybrid, fs)
    raise NotSupported("no cgroup hierarchy is mounted")
