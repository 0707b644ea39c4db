"""What this node has, what it should not have, and cleaning up after interrupted work.

`inventory` lists the node's VPSs (from its registry, with their kernel state)
and its orphans: kernel objects named for this node — cgroups under its
prefix, volumes in its private directory or in the storage pools it claimed
(kernel/storage: a pool claimed by another node is never listed), id ranges it holds — whose CTID
has no registry entry. Objects of other nodes are never looked at: every
name is derived from this node's own prefix, state root and node name.

`recover` runs when a worker starts: an operation whose run died mid-way
(journal: lease expired or owner gone) and whose VPS never reached the
registry was an interrupted create; its half-made objects are removed so
the redelivered message starts clean.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from kernel import statefile
from kernel.errors import NotFound
from kernel.runtime import Runtime
from worker.journal import Journal
from worker.vps import facts

log = logging.getLogger(__name__)


def _numeric_entries(path: str) -> set[int]:
    try:
        return {int(name) for name in os.listdir(path) if name.isdigit()}
    except FileNotFoundError:
        return set()


def orphans(rt: Runtime) -> dict[str, list[int]]:
    known = set(rt.registry.ctids())
    cgroups: set[int] = set()
    for mount in rt.cgroups.hierarchies().values():
        cgroups |= _numeric_entries(os.path.join(mount, rt.cgroups.prefix))
    return {
        "cgroups": sorted(cgroups - known),
        "volumes": sorted((_numeric_entries(rt.config.private_dir) | rt.storage.volumes()) - known),
        "id_ranges": sorted(set(rt.ids.owned()) - known),
    }


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


def clean_orphans(rt: Runtime) -> list[int]:
    """Remove every orphan of this node (destroy is idempotent and tolerates a missing record)."""
    found = orphans(rt)
    ctids = sorted({c for kind in found.values() for c in kind})
    for ctid in ctids:
        log.warning("removing leftovers of CT %s: %s", ctid, {k: ctid in v for k, v in found.items()})
        if rt.cgroups.exists(ctid):
            rt.cgroups.kill(ctid)
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
