"""nftables through nft(8) (kernel/run.py), in ctpanel's own tables only.

Debian's libnftables Python binding cannot be installed into a venv, so the
tool is the interface: state is read as JSON (`nft -j list ...`), changes go
in as one atomic `nft -f -` batch in nft's own syntax (kernel/net/rules.py
builds them from validated values only). Nothing here ever flushes the
ruleset: callers name their own tables, and a table is created and deleted
as a unit. A namespace is an argument (`nsenter --net`
runs nft there; the worker itself never enters it).

Runs in one namespace take turns (`lock`): each nft run reads the whole
ruleset into its cache first and starts that read again whenever another
commit changed the ruleset meanwhile, so 16 starts committing at once kept
each other's reads restarting (one `nft list tables` ran out its 30 s).
The kernel commits one transaction per namespace at a time anyway.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kernel import statefile
from kernel.errors import CommandFailed, InvalidArgument, NotFound
from kernel.net.ip import netns_path
from kernel.run import Completed, run


@dataclass(frozen=True)
class Counter:
    packets: int
    bytes: int


def in_netns(netns: str | None, argv: Sequence[str]) -> list[str]:
    """`argv` run inside `netns` (None: here) through nsenter(1)."""
    path = netns_path(netns)
    return [*(["nsenter", f"--net={path}"] if path else []), *argv]


def lock_path(directory: str, netns: str | None) -> str:
    """The lock file of nft runs in `netns` (None: the caller's own) under a machine-wide `directory`."""
    path = netns_path(netns)
    key = "host" if path is None else path.strip("/").replace("/", "_")
    return os.path.join(statefile.ensure_dir(directory), f"nft-{key}.lock")


class Nft:
    """nft in one network namespace; `lock`: a file (`lock_path`) whose flock every run holds."""

    def __init__(self, netns: str | None = None, lock: str | None = None) -> None:
        self.netns = netns
        self.lock = lock

    def _run(self, argv: Sequence[str], **kwargs: Any) -> Completed:
        if self.lock is None:
            return run(in_netns(self.netns, argv), timeout=30, **kwargs)
        with statefile.flocked(self.lock):
            return run(in_netns(self.netns, argv), timeout=30, **kwargs)

    def batch(self, text: str) -> None:
        """Run an nft(8) batch atomically (`nft -f -`): all of it takes effect or none."""
        if not text.strip():
            return
        try:
            self._run(["nft", "-f", "-"], input=text)
        except CommandFailed as exc:
            if "No such file or directory" in exc.stderr:
                raise NotFound(f"nft: {exc.stderr.strip()}") from exc
            raise

    def list(self, *what: str) -> list[dict[str, Any]]:
        """`nft -j list WHAT...` as the list of objects (metainfo left out)."""
        try:
            out = self._run(["nft", "-j", "list", *what]).stdout
        except CommandFailed as exc:
            if "No such file or directory" in exc.stderr:
                raise NotFound(f"nft list {' '.join(what)}: no such object") from exc
            raise
        return [item for item in json.loads(out)["nftables"] if "metainfo" not in item]

    def tables(self) -> list[tuple[str, str]]:
        """(family, name) of every table: listing names only, nothing is changed."""
        return [(t["table"]["family"], t["table"]["name"]) for t in self.list("tables")]

    def has_table(self, family: str, name: str) -> bool:
        return (family, name) in self.tables()

    def delete_table(self, family: str, name: str) -> bool:
        """Delete one of our tables; False when it was not there."""
        check_name(name)
        if not self.has_table(family, name):
            return False
        self.batch(f"delete table {family} {name}\n")
        return True

    def counters(self, family: str, table: str) -> dict[str, Counter]:
        """Named counters of one table."""
        out = {}
        for item in self.list("counters", "table", family, table):
            if "counter" in item:
                c = item["counter"]
                out[c["name"]] = Counter(packets=c["packets"], bytes=c["bytes"])
        return out

    def all_counters(self) -> dict[tuple[str, str], dict[str, Counter]]:
        """Every named counter of every table, {(family, table): {name: Counter}}: one nft call."""
        out: dict[tuple[str, str], dict[str, Counter]] = {}
        for item in self.list("counters"):
            if "counter" in item:
                c = item["counter"]
                out.setdefault((c["family"], c["table"]), {})[c["name"]] = Counter(c["packets"], c["bytes"])
        return out


def check_name(name: str) -> str:
    """nft identifiers we use: letters, digits and '_' (no quoting needed anywhere)."""
    if not name or not name[0].isalpha() or not all(c.isalnum() or c == "_" for c in name) or len(name) > 64:
        raise InvalidArgument(f"bad nft name {name!r}")
    return name
