"""The slower accounting tier: rows no cgroup file counts, from the VPS's processes and namespaces.

numfile (open descriptors of every VPS process, /proc/PID/fd), numpty (distinct
ptys with either end open among them, in any devpts instance; told from the
descriptors' fdinfo and the mount table, never by a stat of the file),
numtcpsock / numothersock (distinct sockets, told apart by the inode lists of
/proc/PID/net/tcp{,6} of each network namespace the VPS uses), numflock
(/proc/locks entries held by VPS processes) and numiptent (nft rules in each of
the VPS's network namespaces, one netlink dump each; no nft(8) run). No kernel
event counter exists for these, so their failcnt is always 0 (DESIGN.md:
failcnt is never guessed); maxheld is the largest value this tier saw.
numfile's barrier/limit is the RLIMIT_NOFILE every VPS process gets (a
per-process cap, as enforced).

The node's usage sampler (worker/usage.py) runs this tier for a slice of the
VPSs per batch and keeps each VPS's last rows in `rows_path(run_dir)`
(`save_rows`), where the in-VPS table's server (`SavedRows`) finds them.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping

from kernel import statefile
from kernel.cgroups import CgroupDriver
from kernel.errors import KernelError
from kernel.net import nfobjects
from kernel.ubc.counters import UNLIMITED, Ledger, Row
from kernel.ubc.limits import NUMFILE_HOST_CAP, Limits


def _fds(pid: int) -> list[tuple[str, str]]:
    """(descriptor number, link target) of each open descriptor of `pid`."""
    base = f"/proc/{pid}/fd"
    out: list[tuple[str, str]] = []
    with contextlib.suppress(OSError):
        for name in os.listdir(base):
            with contextlib.suppress(OSError):
                out.append((name, os.readlink(f"{base}/{name}")))
    return out


def _devpts(pid: int) -> dict[str, str]:
    """Mount id → superblock device of each devpts mount in `pid`'s mount namespace."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            if right.startswith("devpts "):
                fields = left.split()
                out[fields[0]] = fields[2]
    return out


def _pty(pid: int, fd: str, target: str, devpts: Callable[[], dict[str, str]]) -> tuple[str, int] | None:
    """(devpts instance, pty index) when descriptor `fd` is either end of a pty, else None.

    Only what the kernel says of the descriptor itself is read (its fdinfo: mount id, and a
    master's tty-index), never the file: a stat would reach whatever filesystem the VPS opened
    it on, a FUSE server of its own included, and could block the node. A slave is any file of
    a devpts mount (a devpts the VPS mounted itself too) named by its index; a master is the
    instance's ptmx."""
    name = target.rpartition("/")[2]
    if not (name.isdigit() or name == "ptmx"):
        return None  # only pty ends are named so
    mount, index = "", None
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key == "mnt_id":
                mount = value.strip()
            elif key == "tty-index":
                index = int(value)
    instance = devpts().get(mount)
    if instance is None:
        return None
    if name == "ptmx":
        return None if index is None else (instance, index)
    return instance, int(name)


def _tcp_inodes(pid: int) -> set[str]:
    found: set[str] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}", encoding="ascii") as fh:
            next(fh, None)
            for line in fh:
                fields = line.split()
                if len(fields) > 9:
                    found.add(fields[9])
    return found


def lock_owners(text: str) -> list[int]:
    """PIDs holding each lock listed in /proc/locks (waiters, `->` lines, left out)."""
    owners: list[int] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[1] != "->" and fields[4].lstrip("-").isdigit():
            owners.append(int(fields[4]))
    return owners


def count(pids: list[int], locks: str, *, nft: bool = True) -> dict[str, int]:
    """held values for one VPS's processes."""
    files = tcp = other = 0
    netns: dict[int, int] = {}
    sockets: set[tuple[int, str]] = set()  # a socket shared by several processes is one socket
    ptys: set[tuple[str, int]] = set()
    mounts: dict[int, dict[str, str]] = {}  # mount namespace → its devpts mounts, read when first needed

    def devpts_of(pid: int) -> Callable[[], dict[str, str]]:
        def read() -> dict[str, str]:
            try:
                ns = os.stat(f"/proc/{pid}/ns/mnt").st_ino
            except OSError:
                return {}
            if ns not in mounts:
                mounts[ns] = _devpts(pid)
            return mounts[ns]
        return read

    for pid in pids:
        fds = _fds(pid)
        files += len(fds)
        try:
            ns = os.stat(f"/proc/{pid}/ns/net").st_ino
        except OSError:
            continue
        netns.setdefault(ns, pid)
        for fd, target in fds:
            if target.startswith("socket:["):
                sockets.add((ns, target[8:-1]))
            elif target.startswith("/") and (pty := _pty(pid, fd, target, devpts_of(pid))) is not None:
                ptys.add(pty)
    # Reading a tcp table walks the namespace's whole socket hash: only where sockets are open.
    with_sockets = {ns for ns, _ in sockets}
    tcp_by_ns = {ns: _tcp_inodes(pid) for ns, pid in netns.items() if ns in with_sockets}
    for ns, inode in sockets:
        if inode in tcp_by_ns[ns]:
            tcp += 1
        else:
            other += 1
    mine = set(pids)
    held = {"numfile": files, "numpty": len(ptys), "numtcpsock": tcp, "numothersock": other,
            "numflock": sum(1 for p in lock_owners(locks) if p in mine)}
    if nft:
        rules = 0
        for pid in netns.values():
            with contextlib.suppress(KernelError, OSError):  # OSError: the process left meanwhile
                rules += nfobjects.rule_count(f"/proc/{pid}/ns/net")
        held["numiptent"] = rules
    return held


def account(driver: CgroupDriver, limits: Mapping[int, Limits], ledger: Ledger | None = None,
            *, nft: bool = True) -> dict[int, dict[str, Row]]:
    """Accounting rows of every VPS in `limits` (CTID → its limits) that has processes."""
    ledger = ledger or Ledger(None)
    with open("/proc/locks", encoding="ascii") as fh:
        locks = fh.read()
    out: dict[int, dict[str, Row]] = {}
    for ctid, lim in limits.items():
        try:
            pids = driver.pids(ctid)
        except KernelError:
            continue
        caps = {"numfile": lim.numfile or NUMFILE_HOST_CAP, "numpty": lim.numpty}
        rows = {}
        for name, held in count(pids, locks, nft=nft).items():
            cap = caps.get(name, UNLIMITED)
            rows[name] = Row(held, ledger.peak(ctid, name, held), cap, cap, 0)
        out[ctid] = rows
    ledger.save()
    return out


ROWS = ("numfile", "numtcpsock", "numothersock", "numpty", "numflock", "numiptent")


def rows_path(run_dir: str) -> str:
    """Where the node keeps every VPS's last accounting rows (runtime state: stale after a reboot)."""
    return os.path.join(run_dir, "ubc-accounting.json")


def save_rows(path: str, rows: Mapping[int, Mapping[str, Row]]) -> None:
    """Every VPS's last accounting rows, replaced whole (readers see the old or the new file)."""
    statefile.ensure_dir(os.path.dirname(path))
    statefile.write_json(path, {"time": time.time(), "vps": {
        str(ctid): {name: [row.held, row.maxheld, row.barrier, row.limit, row.failcnt] for name, row in table.items()}
        for ctid, table in rows.items()}}, durable=False)


class SavedRows:
    """The rows `save_rows` wrote, re-read when the file changes: looked at (a stat) at most once
    per `recheck` seconds, not once per VPS text. A VPS without saved rows gets one shared empty dict."""

    def __init__(self, path: str, recheck: float = 0.5) -> None:
        self.path = path
        self.recheck = recheck
        self._stamp: tuple[int, int] | None = None
        self._checked = -recheck
        self._rows: dict[int, dict[str, Row]] = {}
        self._none: dict[str, Row] = {}

    def __call__(self, ctid: int) -> dict[str, Row]:
        now = time.monotonic()
        if now - self._checked >= self.recheck:
            self._checked = now
            try:
                st = os.stat(self.path)
            except OSError:
                self._stamp, self._rows = None, {}
            else:
                if (st.st_ino, st.st_mtime_ns) != self._stamp:
                    self._stamp, self._rows = (st.st_ino, st.st_mtime_ns), self._load()
        return self._rows.get(ctid, self._none)

    def _load(self) -> dict[int, dict[str, Row]]:
        try:
            data = statefile.read_json(self.path) or {}
            return {int(ctid): {name: Row(*map(int, values)) for name, values in table.items()}
                    for ctid, table in data.get("vps", {}).items()}
        except (KernelError, ValueError, TypeError, AttributeError):
            return {}  # half-written by a crash (written without fsync): no rows until the next save
