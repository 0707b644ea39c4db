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
from typing import Any, NamedTuple

from kernel import statefile
from kernel.cgroups import INNER, CgroupDriver
from kernel.cgroups.fs import RealFS
from kernel.errors import KernelError, NotFound, from_oserror
from kernel.ubc.values import LONG_MAX

UNLIMITED = LONG_MAX
ROWS = ("kmemsize", "numproc", "physpages", "swappages", "tcpsndbuf", "shmpages")
SAVE_EVERY = 60.0
MAX_OPEN_FILES = 8192  # cgroup files a reader keeps open (about 19 per VPS); beyond, open/read/close


class Row(NamedTuple):
    """One beancounter row (a named tuple: the in-VPS table's server makes six per VPS per second)."""

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


def _num(text: bytes) -> int:
    try:
        value = int(text)  # one number and a newline: the usual file
    except ValueError:
        value = int(text.split()[0]) if text.strip() else 0
    return UNLIMITED if value >= 1 << 62 else value


def _limit(text: bytes) -> int:
    return UNLIMITED if text.startswith(b"max") or not text.strip() else _num(text)


def _stat(text: bytes, key: bytes) -> int:
    """One `key value` line of a keyed file (memory.stat, *.events, cpu.stat); 0 when absent."""
    if text.startswith(key + b" "):
        at = 0
    else:
        at = text.find(b"\n" + key + b" ") + 1
        if at == 0:
            return 0
    end = text.find(b"\n", at)
    return int(text[at + len(key) + 1:end if end >= 0 else None])


def _kept(peaks: dict[str, int], row: str, held: int) -> int:
    if held > peaks.get(row, -1):
        peaks[row] = held
    return peaks[row]


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

    def _entry(self, ctid: int, ident: int | None) -> dict[str, Any]:
        entry = self.vps.get(key := str(ctid))
        if entry is None:
            entry = self.vps[key] = {"ident": ident, "base": {}, "last": {}, "peak": {}}
        return entry

    def observe(self, ctid: int, ident: int | None, values: dict[str, int]) -> dict[str, int]:
        """Kernel counters of one read → monotonic totals."""
        entry = self._entry(ctid, ident)
        base, last = entry["base"], entry["last"]
        recreated = ident is not None and entry["ident"] not in (None, ident)
        if not recreated:
            for key, value in last.items():
                if values.get(key, 0) < value:  # went backwards: re-created under an unseen identity
                    recreated = True
                    break
        if recreated:
            for key, value in last.items():
                base[key] = base.get(key, 0) + value
            entry["last"], entry["peak"], entry["ident"] = {}, {}, ident
            last = entry["last"]
            self._dirty = True
        if entry["ident"] is None and ident is not None:
            entry["ident"] = ident
        last.update(values)
        if not base:
            return dict(values)
        return {key: base.get(key, 0) + value for key, value in values.items()}

    def peak(self, ctid: int, row: str, held: int) -> int:
        """The largest `held` seen since the cgroup was made (for kernels without a peak file)."""
        return _kept(self.peaks(ctid), row, held)

    def peaks(self, ctid: int) -> dict[str, int]:
        """The VPS's kept peaks (row → largest held seen since the cgroup was made), updated in place."""
        peaks: dict[str, int] = self._entry(ctid, None)["peak"]
        return peaks

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


Raw = tuple[int | None, tuple[bytes | None, ...]]  # a VPS's cgroup identity and its files' texts (None: absent)

# The files of a VPS's table in the order the parsers take them: (controller, inner cgroup, name).
_V1 = (
    ("memory", False, "memory.usage_in_bytes"), ("memory", False, "memory.limit_in_bytes"),
    ("memory", False, "memory.max_usage_in_bytes"), ("memory", False, "memory.failcnt"),
    ("memory", False, "memory.memsw.usage_in_bytes"), ("memory", False, "memory.memsw.limit_in_bytes"),
    ("memory", False, "memory.memsw.failcnt"), ("memory", False, "memory.kmem.usage_in_bytes"),
    ("memory", False, "memory.kmem.max_usage_in_bytes"), ("memory", False, "memory.kmem.tcp.usage_in_bytes"),
    ("memory", False, "memory.stat"), ("pids", False, "pids.current"), ("pids", False, "pids.max"),
    ("pids", False, "pids.peak"), ("pids", False, "pids.events"), ("pids", True, "pids.events"),
)
_V1_TOTALS = (("memory", False, "memory.oom_control"), ("memory", True, "memory.oom_control"),
              ("cpuacct", False, "cpuacct.usage"))
_V2 = (
    ("memory", False, "memory.current"), ("memory", False, "memory.max"), ("memory", False, "memory.events"),
    ("memory", False, "memory.peak"), ("memory", False, "memory.swap.current"), ("memory", False, "memory.swap.max"),
    ("memory", False, "memory.swap.peak"), ("memory", False, "memory.swap.events"), ("memory", False, "memory.stat"),
    ("pids", False, "pids.current"), ("pids", False, "pids.max"), ("pids", False, "pids.peak"),
    ("pids", False, "pids.events"), ("pids", False, "pids.events.local"), ("pids", True, "pids.events"),
)
_V2_TOTALS = (("cpu", False, "cpu.stat"),)


def _need(text: bytes | None) -> bytes:
    if text is None:
        raise NotFound("a cgroup file of the VPS's table is missing")
    return text


def _opt(text: bytes | None) -> int | None:
    """A kernel peak file, or None where this kernel has none."""
    return None if text is None else _num(text)


def _close_all(held: dict[int, tuple[int | None, list[int | None]]]) -> None:
    for _, fds in held.values():
        for fd in fds:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
    held.clear()


def _ident(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


class FastReader:
    """Reads every VPS's table from its outer cgroups; one instance per sampling loop.

    On the real cgroupfs a VPS's files stay open and are re-read with pread at offset 0 (the
    kernel makes the text anew): a third of the syscalls of open, read, close. A cgroup
    re-created since (a VPS restart) or removed answers ENODEV: its files are opened again, and
    its identity (the memory cgroup's inode, for the ledger) is taken at each opening only."""

    def __init__(self, driver: CgroupDriver, ledger: Ledger | None = None, *, totals: bool = True) -> None:
        """`totals=False`: the table's rows only, no cpu_ns or oom_kill (3 files fewer per VPS on v1,
        for the in-VPS table's server), and failcnts as the kernel counts them since the VPS's
        cgroup was made (its start, as OpenVZ's table), with no ledger totals; kept peaks
        restart with the cgroup either way."""
        self.driver = driver
        self.ledger = ledger or Ledger(None)
        self.totals = totals
        v1 = driver.version == 1
        self._files = (_V1 + _V1_TOTALS if totals else _V1) if v1 else (_V2 + _V2_TOTALS if totals else _V2)
        self._parse = self._parse_v1 if v1 else self._parse_v2
        self._tops: dict[str, str] = {}  # controller → prefix cgroup (string joins: this is the hot path)
        self._keep_fds = isinstance(driver.fs, RealFS)
        self._held: dict[int, tuple[int | None, list[int | None]]] = {}  # ctid → (identity, open files)
        self._open_files = 0
        self._peaks: dict[int, tuple[int | None, dict[str, int]]] = {}  # totals=False: ctid → (identity, kept peaks)
        weakref.finalize(self, _close_all, self._held)  # a reader dropped without close()

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
        if ctids is None:
            for ctid in set(self._held) - set(listed):
                self.forget(ctid)
        self.ledger.save()
        return out

    def read_one(self, ctid: int) -> Sample:
        """One VPS's sample; `NotFound` (a `KernelError`) when its cgroups are gone."""
        return self.sample(ctid, self.raw(ctid))

    def raw(self, ctid: int) -> Raw:
        """The texts of the VPS's table files: equal raws make equal samples (no need to parse
        again while the ledger saw nothing else of this VPS)."""
        held = self._held.get(ctid)
        if held is not None:
            try:
                return held[0], tuple([None if fd is None else os.pread(fd, 65536, 0) for fd in held[1]])
            except OSError:  # ENODEV: re-created or removed
                self.forget(ctid)
        paths = [f"{self._dir(ctid, controller, inner)}/{name}" for controller, inner, name in self._files]
        if not self._keep_fds or self._open_files + len(paths) > MAX_OPEN_FILES:
            texts = tuple(self._read_path(path) for path in paths)
            return _ident(self._dir(ctid, "memory")), texts
        return self._hold(ctid, paths)

    def _read_path(self, path: str) -> bytes | None:
        try:
            return self.driver.fs.read(path).encode("ascii")
        except NotFound:
            return None

    def _hold(self, ctid: int, paths: list[str]) -> Raw:
        fds: list[int | None] = []
        try:
            for path in paths:
                try:
                    fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
                except FileNotFoundError:
                    fds.append(None)
            texts = tuple([None if fd is None else os.pread(fd, 65536, 0) for fd in fds])
        except OSError as exc:
            _close_all({ctid: (None, fds)})
            raise from_oserror(exc, "cannot read cgroup file") from exc
        ident = _ident(self._dir(ctid, "memory"))
        # Nothing kept for a VPS without cgroups, nor while its inner cgroup is not made yet (a start).
        inner_missing = any(fd is None and inner for fd, (_, inner, _) in zip(fds, self._files, strict=True))
        if fds[0] is None or inner_missing:
            _close_all({ctid: (None, fds)})
            if fds[0] is None:  # no cgroups (destroyed): nothing of it to keep
                self._peaks.pop(ctid, None)
        else:
            self._held[ctid] = (ident, fds)
            self._open_files += sum(fd is not None for fd in fds)
        return ident, texts

    def forget(self, ctid: int) -> None:
        """Close the files kept open for `ctid` (opened again at its next read)."""
        held = self._held.pop(ctid, None)
        if held is not None:
            self._open_files -= sum(fd is not None for fd in held[1])
            _close_all({ctid: held})

    def close(self) -> None:
        """Close the descriptors kept open."""
        for ctid in list(self._held):
            self.forget(ctid)

    def sample(self, ctid: int, raw: Raw) -> Sample:
        """The sample of a `raw()` result (the ledger observes it)."""
        return self._parse(ctid, raw[0], raw[1])

    def _finish(self, ctid: int, ident: int | None, raw: dict[str, tuple[int, int | None, int, int]],
                events: dict[str, int], extra: dict[str, int]) -> Sample:
        if self.totals:
            events.update(extra)
            totals = self.ledger.observe(ctid, ident, events)
            peaks = self.ledger.peaks(ctid)
        else:  # the kernel's counters as they are: since the cgroup was made (the VPS's start)
            totals = events
            mine = self._peaks.get(ctid)
            if mine is None or mine[0] != ident:
                mine = self._peaks[ctid] = (ident, {})
            peaks = mine[1]
        rows: dict[str, Row] = {}
        kept: list[str] = []
        for name, (held, peak, barrier, limit) in raw.items():
            if peak is None:
                kept.append(name)
                maxheld = _kept(peaks, name, held)
            else:
                maxheld = peak if peak > held else held
            rows[name] = Row(held, maxheld, barrier, limit, totals.get(name + ".failcnt", 0))
        return Sample(ctid, self.ledger.epoch, rows, {"cpu_ns": totals.get("cpu_ns", 0),
                                                      "oom_kill": totals.get("oom_kill", 0)}, {}, kept)

    def _parse_v1(self, ctid: int, ident: int | None, g: tuple[bytes | None, ...]) -> Sample:
        usage, memlimit = _num(_need(g[0])), _limit(_need(g[1]))
        raw = {"physpages": (usage, _num(_need(g[2])), memlimit, memlimit)}
        events = {"physpages.failcnt": _num(_need(g[3]))}
        swap = 0
        if g[4] is not None and g[5] is not None and g[6] is not None:  # absent without swap accounting
            swap, swlimit = max(0, _num(g[4]) - usage), _limit(g[5])
            swlimit = swlimit if swlimit == UNLIMITED or memlimit == UNLIMITED else max(0, swlimit - memlimit)
            raw["swappages"] = (swap, None, swlimit, swlimit)
            events["swappages.failcnt"] = _num(g[6])
        if g[7] is not None and g[8] is not None:  # kmem has no limit on current kernels: failcnt stays 0
            raw["kmemsize"] = (_num(g[7]), _num(g[8]), UNLIMITED, UNLIMITED)
            if g[9] is not None:
                raw["tcpsndbuf"] = (_num(g[9]), None, UNLIMITED, UNLIMITED)
        # v1 memory.stat: plain keys are this cgroup's own pages, total_* include its children.
        raw["shmpages"] = (_stat(_need(g[10]), b"total_shmem"), None, UNLIMITED, UNLIMITED)
        nproc, pmax = _num(_need(g[11])), _limit(_need(g[12]))
        raw["numproc"] = (nproc, _opt(g[13]), pmax, pmax)
        # v1 counts a refused fork in the cgroup of the forking task (the inner one), v2 hierarchically.
        events["numproc.failcnt"] = _stat(_need(g[14]), b"max") + (0 if g[15] is None else _stat(g[15], b"max"))
        oom = cpu = 0
        if self.totals:
            # v1 counts an OOM kill in the victim's own memcg only (the inner one), not its parents.
            oom = _stat(_need(g[16]), b"oom_kill") + (0 if g[17] is None else _stat(g[17], b"oom_kill"))
            cpu = _num(_need(g[18]))
        sample = self._finish(ctid, ident, raw, events, {"oom_kill": oom, "cpu_ns": cpu})
        sample.gauges = {"ram_bytes": usage, "swap_bytes": swap, "processes": nproc}
        return sample

    def _parse_v2(self, ctid: int, ident: int | None, g: tuple[bytes | None, ...]) -> Sample:
        usage, memlimit = _num(_need(g[0])), _limit(_need(g[1]))
        memev = _need(g[2])
        raw = {"physpages": (usage, _opt(g[3]), memlimit, memlimit)}
        events = {"physpages.failcnt": _stat(memev, b"max")}
        swap = 0
        if g[4] is not None and g[5] is not None:  # absent when the kernel has no swap controller
            swap, swlimit = _num(g[4]), _limit(g[5])
            raw["swappages"] = (swap, _opt(g[6]), swlimit, swlimit)
            if g[7] is not None:
                events["swappages.failcnt"] = _stat(g[7], b"max")
        stat = _need(g[8])
        raw["kmemsize"] = (_stat(stat, b"kernel"), None, UNLIMITED, UNLIMITED)
        raw["tcpsndbuf"] = (_stat(stat, b"sock"), None, UNLIMITED, UNLIMITED)
        raw["shmpages"] = (_stat(stat, b"shmem"), None, UNLIMITED, UNLIMITED)
        nproc, pmax = _num(_need(g[9])), _limit(_need(g[10]))
        raw["numproc"] = (nproc, _opt(g[11]), pmax, pmax)
        events["numproc.failcnt"] = _stat(_need(g[12]), b"max")
        if g[13] is None and g[14] is not None:
            # Before Linux 6.13 (no pids.events.local) a refused fork was counted in the forking task's cgroup only.
            events["numproc.failcnt"] += _stat(g[14], b"max")
        cpu = _stat(_need(g[15]), b"usage_usec") * 1000 if self.totals else 0
        sample = self._finish(ctid, ident, raw, events, {"oom_kill": _stat(memev, b"oom_kill"), "cpu_ns": cpu})
        sample.gauges = {"ram_bytes": usage, "swap_bytes": swap, "processes": nproc}
        return sample
