"""The fast reader tier: every VPS's beancounter table from cgroup files only, in one call.

`held`/`maxheld` come from the kernel's current/peak files. Where a kernel
has no peak file (v1 swap; v2 kmemsize, tcp buffers, shmem; v2 swap before
Linux 6.5, pids before 6.13) the node keeps the maximum it saw between reads,
so `maxheld` there can miss a short spike; `Sample.kept` names those rows.
`failcnt` is the kernel's own event counter only (DESIGN.md,
"Beancounters"): physpages = v1 memory.failcnt / v2 memory.events `max`,
with `oom_kill` beside it; swappages = memsw.failcnt / swap.events `max`;
numproc = pids.events `max`; kmemsize (v1) = kmem.failcnt. On v1 the OOM-kill and
fork-failure counters sit in the victim's own cgroup, so the inner one is added.

Kernel counters restart when a VPS's cgroup is re-created (each start). The
`Ledger` keeps monotonic totals across that: per VPS it remembers the
cgroup's identity (inode) and the last kernel value, and adds the last value
to a base when the identity changes or the value goes backwards. Its
`epoch` changes only when the ledger file is lost, which tells the panel to
restart its own deltas. Units: bytes and counts; unlimited = `UNLIMITED`.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any

from kernel import statefile
from kernel.cgroups import INNER, CgroupDriver
from kernel.cgroups.fs import RealFS
from kernel.errors import KernelError, NotFound, from_oserror
from kernel.ubc.values import LONG_MAX

UNLIMITED = LONG_MAX
ROWS = ("kmemsize", "numproc", "physpages", "swappages", "tcpsndbuf", "shmpages")
SAVE_EVERY = 60.0
MAX_OPEN_FILES = 8192  # cgroup files a reader keeps open (about 19 per VPS); beyond, open/read/close


@dataclass(frozen=True)
class Row:
    held: int
    maxheld: int
    barrier: int
    limit: int
    failcnt: int

    def to_json(self) -> dict[str, int]:
        return {"held": self.held, "maxheld": self.maxheld, "barrier": self.barrier,
                "limit": self.limit, "failcnt": self.failcnt}


@dataclass
class Sample:
    """One VPS at one read: beancounter rows, monotonic totals and gauges."""

    ctid: int
    epoch: str
    rows: dict[str, Row] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)  # cpu_ns, oom_kill
    gauges: dict[str, int] = field(default_factory=dict)  # ram_bytes, swap_bytes, processes
    kept: list[str] = field(default_factory=list)  # rows whose maxheld the node keeps (no kernel peak)

    def to_usage(self) -> dict[str, Any]:
        """The `UsageBatch` sample (worker/protocol.py) minus what other readers add (network, disk)."""
        return {"ctid": self.ctid, "epoch": self.epoch, "cpu_ns": self.totals.get("cpu_ns", 0),
                "oom_kills": self.totals.get("oom_kill", 0),
                **self.gauges, "beancounters": {name: row.to_json() for name, row in self.rows.items()}}


def _num(text: str) -> int:
    value = int(text.split()[0]) if text.strip() else 0
    return UNLIMITED if value >= 1 << 62 else value


def _limit(text: str) -> int:
    raw = text.split()[0] if text.strip() else "max"
    return UNLIMITED if raw == "max" else _num(raw)


def _keyed(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def _stat(text: str, key: str) -> int:
    """One key of a memory.stat text (without parsing the other ~40 lines)."""
    at = text.find(f"\n{key} ") + 1 if not text.startswith(f"{key} ") else 0
    if at == 0 and not text.startswith(f"{key} "):
        return 0
    end = text.find("\n", at)
    return int(text[at + len(key) + 1:end if end >= 0 else None])


class Ledger:
    """Monotonic totals and kept peaks, persisted under the node's state root."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        data: dict[str, Any] = {}
        if path:
            with contextlib.suppress(KernelError, OSError, ValueError):
                data = statefile.read_json(path) or {}
        self.epoch: str = data.get("epoch") or uuid.uuid4().hex
        self.vps: dict[str, dict[str, Any]] = data.get("vps", {})
        self._dirty = not data
        self._saved = time.monotonic()

    @classmethod
    def for_node(cls, state_root: str) -> Ledger:
        return cls(os.path.join(statefile.ensure_dir(os.path.join(state_root, "ubc")), "ledger.json"))

    def observe(self, ctid: int, ident: int | None, values: dict[str, int]) -> dict[str, int]:
        """Kernel counters of one read → monotonic totals."""
        entry = self.vps.setdefault(str(ctid), {"ident": ident, "base": {}, "last": {}, "peak": {}})
        base, last = entry["base"], entry["last"]
        recreated = ident is not None and entry["ident"] not in (None, ident)
        if recreated or any(values.get(k, 0) < v for k, v in last.items()):
            for key, value in last.items():
                base[key] = base.get(key, 0) + value
            entry["last"], entry["peak"], entry["ident"] = {}, {}, ident
            last = entry["last"]
            self._dirty = True
        if entry["ident"] is None and ident is not None:
            entry["ident"] = ident
        last.update(values)
        return {key: base.get(key, 0) + value for key, value in values.items()}

    def peak(self, ctid: int, row: str, held: int) -> int:
        """The largest `held` seen since the cgroup was made (for kernels without a peak file)."""
        peaks = self.vps.setdefault(str(ctid), {"ident": None, "base": {}, "last": {}, "peak": {}})["peak"]
        if held > peaks.get(row, -1):
            peaks[row] = held
        return int(peaks[row])

    def forget(self, keep: set[int]) -> None:
        """Drop VPSs that no longer exist on the node (destroyed)."""
        for key in [k for k in self.vps if int(k) not in keep]:
            del self.vps[key]
            self._dirty = True

    def save(self, *, force: bool = False) -> None:
        if not self.path:
            return
        if force or self._dirty or time.monotonic() - self._saved > SAVE_EVERY:
            statefile.write_json(self.path, {"epoch": self.epoch, "vps": self.vps})
            self._dirty, self._saved = False, time.monotonic()


def _close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


def _ident(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


class FastReader:
    """Reads every VPS's table from its outer cgroups; one instance per sampling loop."""

    def __init__(self, driver: CgroupDriver, ledger: Ledger | None = None, *, totals: bool = True) -> None:
        """`totals=False`: the table's rows only, no cpu_ns or oom_kill (3 files fewer per VPS on v1,
        for the in-VPS table's server)."""
        self.driver = driver
        self.ledger = ledger or Ledger(None)
        self.totals = totals
        self.read_one = self._read_v1 if driver.version == 1 else self._read_v2
        self._tops: dict[str, str] = {}  # controller → prefix cgroup (string joins: this is the hot path)
        self._keep_fds = isinstance(driver.fs, RealFS)
        self._fds: dict[str, int] = {}
        weakref.finalize(self, _close_all, self._fds)  # a reader dropped without close()

    def _dir(self, ctid: int, controller: str, inner: bool = False) -> str:
        top = self._tops.get(controller)
        if top is None:
            top = self._tops[controller] = self.driver.top_dir(controller)
        return f"{top}/{ctid}/{INNER}" if inner else f"{top}/{ctid}"

    def read_all(self, ctids: list[int] | None = None) -> dict[int, Sample]:
        """Every VPS with cgroups under the prefix (or just `ctids`); a VPS gone mid-read is left out."""
        out: dict[int, Sample] = {}
        listed = self.driver.ctids() if ctids is None else ctids
        for ctid in listed:
            with contextlib.suppress(KernelError):
                out[ctid] = self.read_one(ctid)
        if ctids is None and self._fds:
            self._forget_fds(set(listed))
        self.ledger.save()
        return out

    def close(self) -> None:
        """Close the descriptors kept open (see `_file`)."""
        self._forget_fds(set())

    def _forget_fds(self, keep: set[int]) -> None:
        for path in [p for p in self._fds if int(p[len(self._prefix_of(p)):].split("/", 2)[1]) not in keep]:
            os.close(self._fds.pop(path))

    def _prefix_of(self, path: str) -> str:
        return next(top for top in self._tops.values() if path.startswith(top + "/"))

    def _file(self, directory: str, name: str) -> str:
        """One cgroup file. On the real cgroupfs its descriptor stays open and is re-read with
        pread at offset 0 (the kernel makes the text anew): a third of the syscalls of open, read,
        close. A cgroup re-created since (a VPS restart) answers ENODEV: reopened once."""
        path = f"{directory}/{name}"
        if not self._keep_fds:
            return self.driver.fs.read(path)
        fd = self._fds.get(path)
        if fd is not None:
            try:
                return os.pread(fd, 65536, 0).decode("ascii")
            except OSError:
                os.close(self._fds.pop(path))
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise from_oserror(exc, "cannot read cgroup file") from exc
        try:
            text = os.pread(fd, 65536, 0).decode("ascii")
        except OSError as exc:
            os.close(fd)
            raise from_oserror(exc, "cannot read cgroup file") from exc
        if len(self._fds) < MAX_OPEN_FILES:
            self._fds[path] = fd
        else:
            os.close(fd)
        return text

    def _has(self, directory: str, name: str) -> bool:
        try:
            self._file(directory, name)
        except NotFound:
            return False
        return True

    def _peak(self, directory: str, name: str) -> int | None:
        """A kernel peak file, or None where this kernel has none."""
        try:
            return _num(self._file(directory, name))
        except NotFound:
            return None

    def _finish(self, ctid: int, ident: int | None, raw: dict[str, tuple[int, int | None, int, int]],
                events: dict[str, int], extra: dict[str, int]) -> Sample:
        totals = self.ledger.observe(ctid, ident, {**events, **extra})
        sample = Sample(ctid, self.ledger.epoch)
        for name, (held, peak, barrier, limit) in raw.items():
            if peak is None:
                sample.kept.append(name)
                maxheld = self.ledger.peak(ctid, name, held)
            else:
                maxheld = max(peak, held)
            sample.rows[name] = Row(held, maxheld, barrier, limit, totals.get(f"{name}.failcnt", 0))
        sample.totals = {"cpu_ns": totals.get("cpu_ns", 0), "oom_kill": totals.get("oom_kill", 0)}
        return sample

    def _read_v1(self, ctid: int) -> Sample:
        mem, pids, acct = (self._dir(ctid, c) for c in ("memory", "pids", "cpuacct"))
        f = self._file
        usage, memlimit = _num(f(mem, "memory.usage_in_bytes")), _limit(f(mem, "memory.limit_in_bytes"))
        raw = {"physpages": (usage, _num(f(mem, "memory.max_usage_in_bytes")), memlimit, memlimit)}
        events = {"physpages.failcnt": _num(f(mem, "memory.failcnt"))}
        swap = 0
        with contextlib.suppress(KernelError):  # absent without swap accounting
            memsw = _num(f(mem, "memory.memsw.usage_in_bytes"))
            swlimit = _limit(f(mem, "memory.memsw.limit_in_bytes"))
            swap = max(0, memsw - usage)
            swlimit = swlimit if swlimit == UNLIMITED or memlimit == UNLIMITED else max(0, swlimit - memlimit)
            raw["swappages"] = (swap, None, swlimit, swlimit)
            events["swappages.failcnt"] = _num(f(mem, "memory.memsw.failcnt"))
        with contextlib.suppress(KernelError):  # kmem has no limit on current kernels: failcnt stays 0
            raw["kmemsize"] = (_num(f(mem, "memory.kmem.usage_in_bytes")),
                               _num(f(mem, "memory.kmem.max_usage_in_bytes")), UNLIMITED, UNLIMITED)
            raw["tcpsndbuf"] = (_num(f(mem, "memory.kmem.tcp.usage_in_bytes")), None, UNLIMITED, UNLIMITED)
        # v1 memory.stat: plain keys are this cgroup's own pages, total_* include its children.
        raw["shmpages"] = (_stat(f(mem, "memory.stat"), "total_shmem"), None, UNLIMITED, UNLIMITED)
        # v1 counts an OOM kill in the victim's own memcg only (the inner one), not its parents.
        oom = 0
        if self.totals:
            oom = _keyed(f(mem, "memory.oom_control")).get("oom_kill", 0)
            with contextlib.suppress(KernelError):
                inner = self._dir(ctid, "memory", inner=True)
                oom += _keyed(f(inner, "memory.oom_control")).get("oom_kill", 0)
        nproc, pmax = _num(f(pids, "pids.current")), _limit(f(pids, "pids.max"))
        raw["numproc"] = (nproc, self._peak(pids, "pids.peak"), pmax, pmax)
        # v1 counts a refused fork in the cgroup of the forking task (the inner one), v2 hierarchically.
        events["numproc.failcnt"] = _keyed(f(pids, "pids.events")).get("max", 0)
        with contextlib.suppress(KernelError):
            inner = self._dir(ctid, "pids", inner=True)
            events["numproc.failcnt"] += _keyed(f(inner, "pids.events")).get("max", 0)
        extra = {"oom_kill": oom, "cpu_ns": _num(f(acct, "cpuacct.usage")) if self.totals else 0}
        sample = self._finish(ctid, _ident(mem), raw, events, extra)
        sample.gauges = {"ram_bytes": usage, "swap_bytes": swap, "processes": nproc}
        return sample

    def _read_v2(self, ctid: int) -> Sample:
        cg = self._dir(ctid, "memory")
        f = self._file
        usage, memlimit = _num(f(cg, "memory.current")), _limit(f(cg, "memory.max"))
        memev = _keyed(f(cg, "memory.events"))
        raw = {"physpages": (usage, self._peak(cg, "memory.peak"), memlimit, memlimit)}
        events = {"physpages.failcnt": memev.get("max", 0)}
        swap = 0
        with contextlib.suppress(KernelError):  # absent when the kernel has no swap controller
            swap, swlimit = _num(f(cg, "memory.swap.current")), _limit(f(cg, "memory.swap.max"))
            raw["swappages"] = (swap, self._peak(cg, "memory.swap.peak"), swlimit, swlimit)
            events["swappages.failcnt"] = _keyed(f(cg, "memory.swap.events")).get("max", 0)
        stat = f(cg, "memory.stat")
        raw["kmemsize"] = (_stat(stat, "kernel"), None, UNLIMITED, UNLIMITED)
        raw["tcpsndbuf"] = (_stat(stat, "sock"), None, UNLIMITED, UNLIMITED)
        raw["shmpages"] = (_stat(stat, "shmem"), None, UNLIMITED, UNLIMITED)
        nproc, pmax = _num(f(cg, "pids.current")), _limit(f(cg, "pids.max"))
        raw["numproc"] = (nproc, self._peak(cg, "pids.peak"), pmax, pmax)
        events["numproc.failcnt"] = _keyed(f(cg, "pids.events")).get("max", 0)
        if not self._has(cg, "pids.events.local"):
            # Before Linux 6.13 a refused fork was counted in the forking task's cgroup only.
            with contextlib.suppress(KernelError):
                events["numproc.failcnt"] += _keyed(f(self._dir(ctid, "pids", inner=True), "pids.events")).get("max", 0)
        cpu = _keyed(f(cg, "cpu.stat")).get("usage_usec", 0) * 1000 if self.totals else 0
        sample = self._finish(ctid, _ident(cg), raw, events, {"oom_kill": memev.get("oom_kill", 0), "cpu_ns": cpu})
        sample.gauges = {"ram_bytes": usage, "swap_bytes": swap, "processes": nproc}
        return sample
