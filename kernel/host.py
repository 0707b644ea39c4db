"""What a node is and what it has: read from /proc, cheap enough for every heartbeat."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from typing import Any

from kernel.errors import from_oserror


@dataclass(frozen=True)
class HostCapacity:
    cpus: int
    memory_total: int
    memory_available: int
    swap_total: int
    swap_free: int
    load1: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def meminfo(path: str = "/proc/meminfo") -> dict[str, int]:
    """/proc/meminfo in bytes."""
    values = {}
    try:
        with open(path) as f:
            for line in f:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    factor = 1024 if parts[1:] == ["kB"] else 1
                    values[name] = int(parts[0]) * factor
    except OSError as exc:
        raise from_oserror(exc, "cannot read memory information") from exc
    return values


def capacity() -> HostCapacity:
    mem = meminfo()
    return HostCapacity(
        cpus=len(os.sched_getaffinity(0)),
        memory_total=mem.get("MemTotal", 0),
        memory_available=mem.get("MemAvailable", mem.get("MemFree", 0)),
        swap_total=mem.get("SwapTotal", 0),
        swap_free=mem.get("SwapFree", 0),
        load1=round(os.getloadavg()[0], 2),
    )


def facts() -> dict[str, Any]:
    uname = platform.uname()
    return {"kernel": uname.release, "machine": uname.machine, "hostname": uname.node}
