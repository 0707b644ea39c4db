"""A VPS's beancounter limits: one frozen value, in the protocol's names and units.

Units are bytes and counts (`worker/protocol.py` LIMITS); 0 means unlimited,
except `cpus` (0 = every CPU of the node), `cpuunits` (0 = the default
weight) and `numfile` (0 = the host's cap). `swap` is swap on top of RAM on
both cgroup versions (v1's memsw file holds RAM+swap; the driver adds them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kernel.errors import InvalidArgument
from kernel.ubc.values import parse_barrier_limit, parse_cpulist, parse_number, parse_percent

NUMFILE_HOST_CAP = 20000  # RLIMIT_NOFILE hard cap on this host (root lacks CAP_SYS_RESOURCE)
DEFAULT_NUMPTY = 1024
DEFAULT_IOPRIO = 4

#: Changed on a running VPS by `apply`; the rest take effect at the next start.
LIVE = frozenset({
    "ram", "swap", "numproc", "cpus", "cpulimit", "cpuunits", "cpumask",
    "iolimit", "iopslimit", "ioprio", "numfile", "shmpages",
})
RESTART = frozenset({"numpty"})  # devpts `max=` is a mount option of the VPS's devpts


@dataclass(frozen=True)
class Limits:
    ram: int = 0
    swap: int = 0
    numproc: int = 0
    cpus: int = 0
    cpulimit: int = 0  # percent of one CPU; may exceed 100
    cpuunits: int = 0  # OpenVZ weight, default 1000
    cpumask: str = ""  # kernel cpu list ("0-3,6"); "" = every CPU
    iolimit: int = 0  # bytes/s, each direction, on the device backing the VPS
    iopslimit: int = 0  # operations/s, each direction
    ioprio: int = DEFAULT_IOPRIO  # best-effort class level 0 (high) .. 7 (low)
    numfile: int = 0  # RLIMIT_NOFILE of the VPS's processes
    numpty: int = DEFAULT_NUMPTY  # devpts max= of the VPS's devpts
    shmpages: int = 0  # bytes of SysV shm (kernel.shmall/shmmax in the VPS's IPC namespace); 0 = ram

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "cpumask":
                parse_cpulist(value)
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgument(f"{f.name}: expected a non-negative integer, got {value!r}")
        if self.ioprio > 7:
            raise InvalidArgument("ioprio: 0..7")
        if self.numfile > NUMFILE_HOST_CAP:
            raise InvalidArgument(f"numfile: at most {NUMFILE_HOST_CAP} on this host")

    @classmethod
    def from_protocol(cls, limits: Mapping[str, int]) -> Limits:
        """From a protocol `limits` mapping; names that are not beancounters (disk, rates) are left out."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in limits.items() if k in names})

    @classmethod
    def for_node(cls, limits: Mapping[str, int]) -> tuple[Limits, list[str]]:
        """`from_protocol`, fitted to this node, and notes on what was fitted: a plan is the same on
        every node, but a numfile above this node's RLIMIT_NOFILE cap can only get the cap."""
        values, notes = dict(limits), []
        if values.get("numfile", 0) > NUMFILE_HOST_CAP:
            notes.append(f"numfile {values['numfile']} is above this node's cap: {NUMFILE_HOST_CAP}")
            values["numfile"] = NUMFILE_HOST_CAP
        return cls.from_protocol(values), notes

    def changed(self, other: Limits) -> list[str]:
        """Names whose value differs between `self` and `other`."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(other, f.name)]

    def cpu_quota_percent(self) -> int:
        """Effective quota: `cpus * 100 %` capped further by `cpulimit`; 0 = none."""
        caps = [c for c in (self.cpulimit, self.cpus * 100) if c]
        return min(caps) if caps else 0

    def shm_bytes(self) -> int:
        return self.shmpages or self.ram


#: vzctl set flag → (Limits field, how its value is parsed)
FLAGS: dict[str, tuple[str, str]] = {
    "--ram": ("ram", "bytes"), "--physpages": ("ram", "pages"),
    "--swap": ("swap", "bytes"), "--swappages": ("swap", "pages"),
    "--numproc": ("numproc", "count"), "--cpus": ("cpus", "count"),
    "--cpulimit": ("cpulimit", "percent"), "--cpuunits": ("cpuunits", "count"),
    "--cpumask": ("cpumask", "cpulist"), "--iolimit": ("iolimit", "bytes"),
    "--iopslimit": ("iopslimit", "count"), "--ioprio": ("ioprio", "count"),
    "--numfile": ("numfile", "count"), "--numpty": ("numpty", "count"),
    "--shmpages": ("shmpages", "pages"),
}


def parse_set(argv: Sequence[str], base: Limits | None = None) -> tuple[Limits, bool]:
    """`vzctl set CTID` arguments (after CTID) → (new limits, --save given).

    `B:L` takes the limit (the kernel has one hard limit per row); `unlimited` is 0.
    """
    values: dict[str, int | str] = {}
    save = False
    args = list(argv)
    while args:
        flag = args.pop(0)
        if flag == "--save":
            save = True
            continue
        if flag not in FLAGS:
            raise InvalidArgument(f"unknown option {flag}")
        if not args:
            raise InvalidArgument(f"{flag} needs a value")
        name, kind = FLAGS[flag]
        text = args.pop(0)
        if kind == "percent":
            values[name] = parse_percent(text) or 0
        elif kind == "cpulist":
            values[name] = "" if text == "all" else text
            parse_cpulist(text)
        elif kind == "count" and name in ("cpus", "ioprio", "cpuunits"):
            values[name] = parse_number(text, unit="count") or 0
        else:
            _, limit = parse_barrier_limit(text, unit=kind)
            values[name] = limit or 0
    return dataclasses.replace(base or Limits(), **values), save
