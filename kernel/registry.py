"""The node-local registry: every kernel object a VPS owns, recorded under its CTID.

One JSON file per VPS under `<state_root>/ct/`, written atomically. A
reconciler trusts only this registry to decide what its node owns.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from kernel.config import NodeConfig, check_ctid
from kernel.errors import AlreadyExists, NotFound
from kernel.statefile import ensure_dir, read_json, remove, write_json

SCHEMA = 1


@dataclass(frozen=True)
class Record:
    """What a node knows about one VPS; the names are the ones its kernel objects carry."""

    ctid: int
    node: str
    id_start: int
    id_size: int
    volume: str
    template: str
    hostname: str = ""
    cgroups: dict[str, str] = field(default_factory=dict)
    interfaces: dict[str, str] = field(default_factory=dict)
    onboot: bool = False
    panel_managed: bool = False
    init: str = "/sbin/init"
    halt_signal: str = "SIGUSR2"
    reboot_signal: str = "SIGTERM"

    def to_json(self) -> dict[str, object]:
        return {"schema": SCHEMA, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Record:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})  # type: ignore[arg-type]


class Registry:
    def __init__(self, config: NodeConfig) -> None:
        self._config = config
        self._dir = ensure_dir(config.registry_dir)

    def _path(self, ctid: int) -> str:
        return os.path.join(self._dir, f"{check_ctid(ctid)}.json")

    def add(self, record: Record) -> None:
        if os.path.exists(self._path(record.ctid)):
            raise AlreadyExists(f"CT {record.ctid} is already registered")
        write_json(self._path(record.ctid), record.to_json())

    def put(self, record: Record) -> None:
        """Create or replace the record."""
        write_json(self._path(record.ctid), record.to_json())

    def get(self, ctid: int) -> Record:
        try:
            data = read_json(self._path(ctid))
        except NotFound:
            raise NotFound(f"CT {ctid} does not exist") from None
        record = Record.from_json(data)
        if record.node != self._config.node:
            raise NotFound(f"CT {ctid} belongs to node {record.node}")
        return record

    def find(self, ctid: int) -> Record | None:
        try:
            return self.get(ctid)
        except NotFound:
            return None

    def remove(self, ctid: int) -> None:
        remove(self._path(ctid))

    def ctids(self) -> list[int]:
        out = []
        for name in os.listdir(self._dir):
            stem, dot, ext = name.partition(".")
            if dot and ext == "json" and stem.isdigit():
                out.append(int(stem))
        return sorted(out)
