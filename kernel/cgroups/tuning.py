"""The host's cgroup2 mount with `favordynmods`: fast cgroup migrations for VPS starts and execs.

Every start (the future init joins the VPS's cgroups before it unshares) and every
exec (the helper joins them for its fork) moves a process between cgroups. The
kernel then takes the cgroup threadgroup rwsem for writing, and when that lock
was idle the write waits for an RCU grace period first: 6-10 ms on the
development host, the largest single cost of a start and of `vzctl exec`
(issue 4). With `favordynmods` on any cgroup hierarchy (Linux 6.0+) a
migration no longer waits (6.18: it locks only the moving process; the kernel
keeps that mode until reboot, even when the option is removed). The price, per
the kernel's cgroup-v2 documentation, is slightly dearer forks and exits.

On a hybrid host (v1 controllers, cgroup2 beside them) the cgroup2 mount
carries the option: the lock is shared by every hierarchy.
"""

from __future__ import annotations

from kernel import syscalls as sc
from kernel.cgroups import parse_mounts

OPTION = "favordynmods"


def superblock_flags(mountinfo: str, point: str) -> list[str] | None:
    """The superblock options of the mount at `point` (without rw/ro), or None if not mounted."""
    found = None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) >= 5 and len(rfields) >= 3 and fields[4] == point:
            found = [o for o in rfields[2].split(",") if o not in ("rw", "ro")]  # the last mount there wins
    return found


def plan(mountinfo: str) -> tuple[str, list[str]] | None:
    """(cgroup2 mount point, the flags to reconfigure it with) when `favordynmods` is missing;
    None when it is set already or no cgroup2 is mounted. The existing flags are kept
    (nsdelegate, memory_recursiveprot...): a reconfigure clears every flag it is not given."""
    pure, _, hybrid = parse_mounts(mountinfo)
    point = pure or hybrid
    flags = superblock_flags(mountinfo, point) if point else None
    if point is None or flags is None or OPTION in flags:
        return None
    return point, [*flags, OPTION]


def favor_dynmods(mountinfo: str | None = None) -> str | None:
    """Set `favordynmods` on the host's cgroup2 mount; the mount point, or None if nothing was
    to do (already set, or no cgroup2 mounted: a pure v1 host keeps its slow migrations)."""
    if mountinfo is None:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            mountinfo = fh.read()
    todo = plan(mountinfo)
    if todo is None:
        return None
    sc.reconfigure(*todo)
    return todo[0]
