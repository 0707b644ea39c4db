"""Second-level quotas (OpenVZ's per user/group quota inside a VPS) from a VpsRequest's `ugid_quotas`.

The request carries the whole desired list, so the node sets what is
listed and clears the limits of every other id (usage stays counted). Only
a mounted volume can take them: a stopped VPS gets them when a start,
restart or set converges it again. kernel/storage refuses on drivers
without a second level (dir, btrfs).

The per-user files inside the VPS (`Storage.publish_quota`) are written on
every change of limits and, so their usage does not go stale, refreshed by
the usage sampler with each VPS's disk figures (`refresh`).
"""

from __future__ import annotations

import logging
from typing import Any

from kernel.errors import Busy, KernelError
from kernel.runtime import Runtime
from kernel.storage.volumes import Storage
from worker import protocol

KiB = 1024
log = logging.getLogger(__name__)


def _wanted(quota: dict[str, Any]) -> tuple[int, int, int, int]:
    """As the volume reports it: space rounded down to KiB (setquota's unit)."""
    return (quota["space_soft"] // KiB * KiB, quota["space_hard"] // KiB * KiB, quota["inodes_soft"],
            quota["inodes_hard"])


def converge(storage: Storage | None, request: protocol.VpsRequest) -> int:
    """Make the volume's second-level limits the request's; returns how many ids were changed."""
    ctid = request.ctid
    if storage is None or request.limits.get("quotaugidlimit", 0) <= 0 or storage.find(ctid) is None \
            or not storage.active(ctid):
        return 0
    changed = 0
    for kind in protocol.UGID_KINDS:
        wanted = {q["id"]: _wanted(q) for q in request.ugid_quotas if q["kind"] == kind}
        current = {row["id"]: (row["bsoft"], row["bhard"], row["isoft"], row["ihard"])
                   for row in storage.ugid_report(ctid, kind)}
        # Clear first, so moving limits from one id to another stays within quotaugidlimit.
        for ident, limits in current.items():
            if ident not in wanted and any(limits):
                storage.set_ugid_quota(ctid, kind, ident, (0, 0), (0, 0))
                changed += 1
        for ident, (bsoft, bhard, isoft, ihard) in sorted(wanted.items()):
            if current.get(ident, (0, 0, 0, 0)) != (bsoft, bhard, isoft, ihard):
                storage.set_ugid_quota(ctid, kind, ident, (bsoft, bhard), (isoft, ihard))
                changed += 1
    return changed


def refresh(rt: Runtime, ctid: int) -> int:
    """Rewrite the VPS's per-user quota files with the current usage, when its volume is mounted
    and has the second level on; returns the number of files written. The usage is read first
    without the VPS's lock (two repquota runs), which is then held only for the writes: a vzctl
    meanwhile would exit "locked". A VPS whose lock is held is skipped (an operation may be
    unmounting it; the next refresh comes), and errors are logged, not raised: the caller is the
    usage sampler, whose batch must not fail for one VPS."""
    try:
        volume = rt.storage.find(ctid)
        if volume is None or volume.limits.quotaugidlimit <= 0 or not rt.storage.active(ctid):
            return 0
        files = rt.storage.quota_files(ctid)
        with rt.lock(ctid, now=True):
            return rt.storage.publish_quota(ctid, files) if rt.storage.active(ctid) else 0
    except Busy:
        return 0
    except KernelError:
        log.exception("CT %s: second-level quota files not refreshed", ctid)
        return 0
