"""Machine-wide allocator of 65536-id host ranges, one per VPS.

Every node on a machine shares one registry file guarded by flock, so two
nodes (or two workers of one node) never hand out overlapping ranges. A
range is keyed by (node, CTID); allocation is idempotent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kernel.config import NodeConfig, check_ctid
from kernel.errors import NoSpace, NotFound
from kernel.statefile import ensure_dir, flocked, read_json, write_json

RANGE_SIZE = 65536
_ID_LIMIT = 2**32 - 1  # (uid_t)-1 is "no id"


@dataclass(frozen=True)
class IdRange:
    """Host ids `start .. start+size-1` appear as `0 .. size-1` inside the VPS."""

    start: int
    size: int = RANGE_SIZE

    @property
    def end(self) -> int:
        return self.start + self.size

    def map_line(self) -> str:
        """The line for /proc/PID/uid_map and gid_map."""
        return f"0 {self.start} {self.size}\n"

    def overlaps(self, other: IdRange) -> bool:
        return self.start < other.end and other.start < self.end


class IdAllocator:
    def __init__(self, config: NodeConfig) -> None:
        self._path = config.idmap_registry
        self._node = config.node
        self._base = config.id_base
        ensure_dir(os.path.dirname(self._path))

    def _load(self) -> dict[str, dict[str, object]]:
        try:
            data = read_json(self._path)
        except NotFound:
            return {}
        return dict(data.get("ranges", {}))

    def _save(self, ranges: dict[str, dict[str, object]]) -> None:
        write_json(self._path, {"version": 1, "ranges": ranges})

    def allocate(self, ctid: int) -> IdRange:
        """The range of this node's `ctid`, allocating the lowest free slot the first time."""
        check_ctid(ctid)
        with flocked(self._path + ".lock"):
            ranges = self._load()
            for start, owner in ranges.items():
                if owner == {"node": self._node, "ctid": ctid}:
                    return IdRange(int(start))
            taken = {int(s) for s in ranges}
            start = self._base
            while start in taken:
                start += RANGE_SIZE
            if start + RANGE_SIZE - 1 >= _ID_LIMIT:
                raise NoSpace("no free id range left on this machine")
            ranges[str(start)] = {"node": self._node, "ctid": ctid}
            self._save(ranges)
            return IdRange(start)

    def lookup(self, ctid: int) -> IdRange | None:
        for start, owner in self._load().items():
            if owner == {"node": self._node, "ctid": ctid}:
                return IdRange(int(start))
        return None

    def release(self, ctid: int) -> None:
        """Give the range back (destroy). Idempotent."""
        with flocked(self._path + ".lock"):
            ranges = self._load()
            kept = {s: o for s, o in ranges.items() if o != {"node": self._node, "ctid": ctid}}
            if kept != ranges:
                self._save(kept)

    def owned(self) -> dict[int, IdRange]:
        """CTID → range for every range this node holds."""
        return {
            int(owner["ctid"]): IdRange(int(start))  # type: ignore[call-overload]
            for start, owner in self._load().items()
            if owner.get("node") == self._node
        }

    def taken(self, start: int) -> bool:
        """Whether the range at `start` belongs to some VPS now (of any node on this machine)."""
        return str(start) in self._load()
