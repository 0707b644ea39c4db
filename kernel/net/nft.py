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

Batches that wait for that lock go in together: each is left in the lock's
spool directory first, and whoever holds the lock runs every waiting batch
in one nft run (`_combined`). An nft run costs ~20-50 ms, most of it the
same for one batch or ten (process start, reading the ruleset, the commit's
RCU waits), so 20 VPS starts at once took 20 turns of the lock and now take
a few.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kernel import statefile
from kernel.errors import CommandFailed, InvalidArgument, KernelError, NotFound, Timeout
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
        text = text if text.endswith("\n") else text + "\n"
        try:
            if self.lock is None:
                self._run(["nft", "-f", "-"], input=text)
            else:
                self._combined(text)
        except CommandFailed as exc:
            if "No such file or directory" in exc.stderr:
                raise NotFound(f"nft: {exc.stderr.strip()}") from exc
            raise

    def _combined(self, text: str) -> None:
        """`text` run under the lock, in one nft run with the other batches waiting for it.

        The batch goes into the spool directory as `<time>-<pid>-<thread>.nft`; once this
        thread holds the lock, either an earlier holder ran it (its outcome waits in
        `.out`) or this thread runs every batch spooled so far, oldest first. When that
        combined run fails, each batch runs on its own, so a bad batch fails only its
        sender and every other one still takes effect exactly once.
        """
        spool = statefile.ensure_dir(self.lock + ".spool")  # type: ignore[operator]
        mine = f"{time.time_ns():020d}-{os.getpid()}-{threading.get_ident()}"
        statefile.write_text(os.path.join(spool, mine + ".nft"), text, durable=False)
        with statefile.flocked(self.lock):  # type: ignore[arg-type]
            outcome = _take_outcome(os.path.join(spool, mine + ".out"))
            if outcome is None:
                outcome = self._run_spool(spool, mine)
        if outcome:
            raise _error(outcome)

    def _run_spool(self, spool: str, mine: str) -> dict[str, Any]:
        """Run the spooled batches (the lock is held); leave the others' outcomes; return `mine`'s."""
        now = time.time()
        names = []
        for entry in sorted(os.listdir(spool)):
            stem, _, ext = entry.partition(".")
            if ext == "nft":
                names.append(stem)
            elif _stale(os.path.join(spool, entry), now):  # left by a sender killed before it read it
                statefile.remove(os.path.join(spool, entry))
        names = sorted([*[n for n in names if n != mine][: MAX_COMBINED - 1], mine])
        texts: dict[str, str] = {}
        for name in names:
            try:
                with open(os.path.join(spool, name + ".nft"), encoding="utf-8") as fh:
                    texts[name] = fh.read()
            except FileNotFoundError:
                continue
        together = self._outcome("".join(texts.values())) if len(texts) > 1 else None
        if together == {}:
            outcomes = dict.fromkeys(texts, together)
        else:
            outcomes = {name: self._outcome(text) for name, text in texts.items()}
        for name, outcome in outcomes.items():
            if name != mine:
                statefile.write_text(os.path.join(spool, name + ".out"), json.dumps(outcome), durable=False)
            statefile.remove(os.path.join(spool, name + ".nft"))
        return outcomes.get(mine, {})

    def _outcome(self, text: str) -> dict[str, Any]:
        """Run one nft batch; {} when it took effect, else what failed (see `_error`)."""
        try:
            run(in_netns(self.netns, ["nft", "-f", "-"]), timeout=30, input=text)
        except CommandFailed as exc:
            return {"error": "CommandFailed", "message": exc.args[0], "returncode": exc.returncode,
                    "stderr": exc.stderr}
        except KernelError as exc:
            return {"error": type(exc).__name__, "message": str(exc)}
        return {}

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


MAX_COMBINED = 32  # batches per nft run
STALE_SECONDS = 300.0


def _take_outcome(path: str) -> dict[str, Any] | None:
    """The outcome an earlier lock holder left for this batch (removed once read); None: not run yet."""
    try:
        with open(path, encoding="utf-8") as fh:
            outcome = json.load(fh)
    except FileNotFoundError:
        return None
    statefile.remove(path)
    return outcome


def _error(outcome: dict[str, Any]) -> KernelError:
    if outcome["error"] == "CommandFailed":
        return CommandFailed(outcome["message"], returncode=outcome["returncode"], stderr=outcome["stderr"])
    kind = {"Timeout": Timeout, "NotFound": NotFound}.get(outcome["error"], KernelError)
    return kind(outcome["message"])


def _stale(path: str, now: float) -> bool:
    try:
        return now - os.stat(path).st_mtime > STALE_SECONDS
    except FileNotFoundError:
        return False


def check_name(name: str) -> str:
    """nft identifiers we use: letters, digits and '_' (no quoting needed anywhere)."""
    if not name or not name[0].isalpha() or not all(c.isalnum() or c == "_" for c in name) or len(name) > 64:
        raise InvalidArgument(f"bad nft name {name!r}")
    return name
