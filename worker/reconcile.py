"""What this node has, what it should not have, and cleaning up after interrupted work.

`inventory` lists the node's VPSs (from its registry, with their kernel state)
and its orphans: kernel objects named for this node — cgroups under its
prefix, volumes in its private directory or in the storage pools it claimed
(kernel/storage: a pool claimed by another node is never listed), id ranges it holds,
running inits its run directory records, mounts under its state root, host veths
carrying its alias, their routes, and nft tables and chains under its table
prefix (kernel/net's `Network.leftovers`) — whose CTID has no registry entry.
Objects of other nodes are never touched: every name is derived from this
node's own prefix, state root, alias and node name.

`recover` runs when a worker starts: an operation whose run died mid-way
(journal: lease expired or owner gone) and whose VPS never reached the
registry was an interrupted create; its half-made objects are removed so
the redelivered message starts clean.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

from kernel import statefile
from kernel import syscalls as sc
from kernel.errors import KernelError, NotFound
from kernel.runtime import Runtime
from worker.journal import Journal
from worker.vps import facts

log = logging.getLogger(__name__)


def _numeric_entries(path: str) -> set[int]:
    try:
        return {int(name) for name in os.listdir(path) if name.isdigit()}
    except FileNotFoundError:
        return set()


def _inits(rt: Runtime, known: set[int]) -> list[int]:
    """CTIDs whose init the run directory records as running (same start time, not a zombie)."""
    try:
        names = os.listdir(rt.config.run_dir)
    except FileNotFoundError:
        return []
    ctids = {int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit()}
    return sorted(c for c in ctids - known if rt.status(c).running)


def _mount_dirs(rt: Runtime) -> list[str]:
    """Where the runtime mounts a VPS's root under the state root: <root>/CTID, <run>/CTID.root, <private>/CTID."""
    return [rt.config.path("root"), rt.config.run_dir, rt.config.private_dir]


def _mounts(rt: Runtime) -> dict[int, list[str]]:
    """CTID -> mount points of the host's mount namespace at or under its directories of `_mount_dirs`."""
    found: dict[int, list[str]] = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        points = [line.split()[4].replace("\\040", " ") for line in fh]
    for base in _mount_dirs(rt):
        for point in points:
            if not point.startswith(base + "/"):
                continue
            head = point[len(base) + 1:].split("/", 1)[0].removesuffix(".root")
            if head.isdigit():
                found.setdefault(int(head), []).append(point)
    return found


def orphans(rt: Runtime) -> dict[str, list[int]]:
    known = set(rt.registry.ctids())
    cgroups: set[int] = set()
    for mount in rt.cgroups.hierarchies().values():
        cgroups |= _numeric_entries(os.path.join(mount, rt.cgroups.prefix))
    found = {
        "cgroups": sorted(cgroups - known),
        "volumes": sorted((_numeric_entries(rt.config.private_dir) | rt.storage.volumes()) - known),
        "id_ranges": sorted(set(rt.ids.owned()) - known),
        "inits": _inits(rt, known),
        "mounts": sorted(set(_mounts(rt)) - known),
    }
    if rt.network is not None:
        found |= {kind: sorted(by_ctid) for kind, by_ctid in rt.network.leftovers(known).items()}
    return found


def take_forced(state_root: str) -> list[dict[str, Any]]:
    """The changes `vzctl --force` made to panel-managed VPSs (worker/cli/vzctl.py's `record_drift`
    appends them to <state_root>/drift/<ctid>.json); taken once: the report that carries them is
    kept by the journal and re-sent on redelivery."""
    directory = os.path.join(state_root, "drift")
    found: list[dict[str, Any]] = []
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else ():
        if not (name.endswith(".json") and name[:-5].isdigit()):
            continue
        path = os.path.join(directory, name)
        with statefile.flocked(path + ".lock"):
            try:
                entries = statefile.read_json(path)
            except (NotFound, ValueError):
                continue
            found += [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
            statefile.remove(path)
    return found


def inventory(rt: Runtime) -> dict[str, Any]:
    vpss = []
    for ctid in rt.registry.ctids():
        record = rt.registry.find(ctid)
        if record is None:
            continue
        vpss.append({**facts(rt, ctid), "panel_managed": record.panel_managed, "hostname": record.hostname,
                     "template": record.template})
    return {"node": rt.config.node, "vpss": vpss, "orphans": orphans(rt), "forced": take_forced(rt.config.state_root)}


def _kill_init(rt: Runtime, ctid: int, timeout: float = 10.0) -> None:
    """SIGKILL an unregistered init the run directory records (by pidfd: never a reused PID), and wait
    until it is gone or a zombie (its parent reaps it)."""
    pid = rt.status(ctid).init_pid
    if pid is None:
        return
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if rt.status(ctid).init_pid == pid:  # still the recorded init once the pidfd holds it
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    finally:
        os.close(pidfd)
    deadline = time.monotonic() + timeout
    while rt.status(ctid).running and time.monotonic() < deadline:
        time.sleep(0.05)


def clean_orphans(rt: Runtime) -> list[int]:
    """Remove every orphan of this node (destroy is idempotent and tolerates a missing record)."""
    found = orphans(rt)
    ctids = sorted({c for kind in found.values() for c in kind})
    mounts = _mounts(rt)
    for ctid in ctids:
        log.warning("removing leftovers of CT %s: %s", ctid, sorted(k for k, v in found.items() if ctid in v))
        if rt.network is not None:  # first: a veth goes with its VPS's namespace, its routes' addresses with it
            rt.network.remove_leftovers(ctid)
        if rt.cgroups.exists(ctid):
            rt.cgroups.kill(ctid)
        _kill_init(rt, ctid)
        for point in sorted(mounts.get(ctid, ()), key=len, reverse=True):  # nested ones first
            try:
                sc.umount2(point, sc.MNT_DETACH)
            except KernelError as exc:
                log.warning("CT %s: cannot unmount %s: %s", ctid, point, exc)
        rt.destroy(ctid)
        rt.storage.destroy_orphan(ctid)  # pool volumes without a volume record too
    return ctids


def recover(rt: Runtime, journal: Journal) -> list[int]:
    """Clean up after operations whose run died before their VPS was registered."""
    cleaned = []
    for entry in journal.unfinished():
        ctid = entry.body.get("ctid") if isinstance(entry.body, dict) else None
        if isinstance(ctid, int) and rt.registry.find(ctid) is None:
            log.warning("operation %s (%s) died before CT %s existed: removing what it left", entry.operation_id,
                        entry.task, ctid)
            rt.destroy(ctid)
            cleaned.append(ctid)
    return cleaned
