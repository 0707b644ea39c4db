"""The slower accounting tier: rows no cgroup file counts, from the VPS's processes and namespaces.

numfile (open descriptors of every VPS process, /proc/PID/fd), numpty (distinct
/dev/pts/N among them), numtcpsock / numothersock (socket descriptors, told apart
by the inode lists of /proc/PID/net/tcp{,6} of each network namespace the VPS
uses), numflock (/proc/locks entries held by VPS processes) and numiptent (nft
rules in each of the VPS's network namespaces). No kernel event counter exists
for these, so their failcnt is always 0 (DESIGN.md: failcnt is never guessed);
maxheld is the largest value this tier saw. numfile's barrier/limit is the
RLIMIT_NOFILE every VPS process gets (a per-process cap, as enforced).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

from kernel.cgroups import CgroupDriver
from kernel.errors import KernelError
from kernel.net.nft import Nft
from kernel.ubc.counters import UNLIMITED, Ledger, Row
from kernel.ubc.limits import NUMFILE_HOST_CAP, Limits


def _fd_targets(pid: int) -> list[str]:
    base = f"/proc/{pid}/fd"
    out: list[str] = []
    with contextlib.suppress(OSError):
        for name in os.listdir(base):
            with contextlib.suppress(OSError):
                out.append(os.readlink(f"{base}/{name}"))
    return out


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


def count_rules(ruleset: list[dict[str, object]]) -> int:
    return sum(1 for item in ruleset if "rule" in item)


def count(pids: list[int], locks: str, *, nft: bool = True) -> dict[str, int]:
    """held values for one VPS's processes."""
    files = ptys = tcp = other = 0
    netns: dict[int, int] = {}
    sockets: list[tuple[int, str]] = []
    seen_pts: set[str] = set()
    for pid in pids:
        targets = _fd_targets(pid)
        files += len(targets)
        try:
            ns = os.stat(f"/proc/{pid}/ns/net").st_ino
        except OSError:
            continue
        netns.setdefault(ns, pid)
        for target in targets:
            if target.startswith("socket:["):
                sockets.append((ns, target[8:-1]))
            elif target.startswith("/dev/pts/") and target[9:].isdigit():
                seen_pts.add(target)
    ptys = len(seen_pts)
    # Reading a tcp table walks the namespace's whole socket hash: only where sockets are open.
    with_sockets = {ns for ns, _ in sockets}
    tcp_by_ns = {ns: _tcp_inodes(pid) for ns, pid in netns.items() if ns in with_sockets}
    for ns, inode in sockets:
        if inode in tcp_by_ns[ns]:
            tcp += 1
        else:
            other += 1
    mine = set(pids)
    held = {"numfile": files, "numpty": ptys, "numtcpsock": tcp, "numothersock": other,
            "numflock": sum(1 for p in lock_owners(locks) if p in mine)}
    if nft:
        rules = 0
        for pid in netns.values():
            with contextlib.suppress(KernelError):
                rules += count_rules(Nft(f"/proc/{pid}/ns/net").list("ruleset"))
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
