"""Second-level quotas (OpenVZ's per user/group quota inside a VPS) from a VpsRequest's `ugid_quotas`.

The request carries the whole desired list, so the node sets what is
listed and clears the limits of every other id (usage stays counted). Only
a mounted volume can take them: a stopped VPS gets them when a start,
restart or set converges it again. kernel/storage refuses on drivers
without a second level (dir, btrfs).
"""

from __future__ import annotations

from typing import Any

from kernel.storage.volumes import Storage
from worker import protocol

KiB = 1024


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
