"""The node's operation journal: at most one live run of an operation, a bound on deliveries.

Redis's visibility timeout can hand a running task out a second time, and
after a kill -9 of a worker its message only comes back when that timeout
expires. The journal (SQLite in the node's state root, shared by every
worker process of the node) records each operation with a lease:

- a delivery of an operation that another process holds a live lease on is
  dropped (that run reports);
- a delivery of a finished operation re-sends the stored report (the panel
  applies reports once), it does not run again;
- a delivery of an operation whose lease expired, or whose lease owner
  process is gone (its worker was killed), runs it again — node tasks are
  idempotent "ensure" operations;
- after `max_deliveries` the operation is given up and reported failed.

Long tasks renew their lease. A restarted worker asks for `unfinished()`
operations to finish or roll back.

Each thread of a process keeps one connection (WAL, synchronous=NORMAL): a
commit is in the WAL in the page cache, so it survives a kill -9 of any
worker process, but not necessarily a power loss; docs/DESIGN.md says why
that is enough. Opening a connection per call and fsyncing each commit made
16 pool processes queue behind each other's fsyncs for the write lock.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

DEFAULT_LEASE_SECONDS = 120.0
DEFAULT_MAX_DELIVERIES = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    operation_id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_expires REAL NOT NULL DEFAULT 0,
    body TEXT NOT NULL DEFAULT '{}',
    report TEXT,
    started REAL NOT NULL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS operations_state ON operations (state);
"""


class State(StrEnum):
    RUNNING = "running"
    DONE = "done"


class Verdict(StrEnum):
    RUN = "run"              # this process runs it now (first delivery, or the last run died)
    DUPLICATE = "duplicate"  # another process is running it: drop this delivery
    FINISHED = "finished"    # already done: re-send the stored report
    GIVE_UP = "give_up"      # delivered too often: report it failed


@dataclass(frozen=True)
class Entry:
    operation_id: str
    task: str
    target: str
    state: str
    deliveries: int
    lease_owner: str
    lease_expires: float
    body: dict[str, Any]
    report: dict[str, Any] | None


def owner_id(pid: int | None = None) -> str:
    """A process as a lease owner: host, pid and the process's start time (pids are reused)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks; "gone" for no process, or a zombie (it ran its last)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return "gone"
    return "gone" if len(fields) < 20 or fields[0] in ("Z", "X") else fields[19]


def owner_alive(owner: str) -> bool:
    """Whether a lease owner still runs. Owners on other hosts are taken as alive until their lease expires."""
    host, _, rest = owner.partition(":")
    pid, _, ticks = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    return ticks != "gone" and _start_ticks(int(pid)) == ticks


class Journal:
    def __init__(self, path: str | os.PathLike[str], *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 max_deliveries: int = DEFAULT_MAX_DELIVERIES) -> None:
        self.path = Path(path)
        self.lease_seconds = lease_seconds
        self.max_deliveries = max_deliveries
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._local = threading.local()
        self._db().executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use; a forked child (a pool process) opens its own,
        never using one it inherited (SQLite's connections do not survive a fork)."""
        opened: tuple[int, sqlite3.Connection] | None = getattr(self._local, "db", None)
        if opened is not None and opened[0] == os.getpid():
            return opened[1]
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        self._local.db = (os.getpid(), db)
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def begin(self, operation_id: str, task: str, *, target: str = "", body: dict[str, Any] | None = None,
              owner: str | None = None, now: float | None = None) -> tuple[Verdict, Entry]:
        """Decide what this delivery of an operation does, and take the lease if it runs."""
        owner = owner or owner_id()
        now = time.time() if now is None else now
        with self._transaction() as db:
            row = db.execute("SELECT * FROM operations WHERE operation_id = ?", (operation_id,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO operations (operation_id, task, target, state, deliveries, lease_owner,"
                    " lease_expires, body, started) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)",
                    (operation_id, task, target, State.RUNNING, owner, now + self.lease_seconds,
                     json.dumps(body or {}), now),
                )
                verdict = Verdict.RUN
            else:
                entry = _entry(row)
                if entry.state == State.DONE:
                    verdict = Verdict.FINISHED
                elif entry.lease_expires > now and entry.lease_owner != owner and owner_alive(entry.lease_owner):
                    verdict = Verdict.DUPLICATE
                elif entry.deliveries >= self.max_deliveries:
                    verdict = Verdict.GIVE_UP
                else:
                    db.execute(
                        "UPDATE operations SET deliveries = deliveries + 1, lease_owner = ?, lease_expires = ?"
                        " WHERE operation_id = ?",
                        (owner, now + self.lease_seconds, operation_id),
                    )
                    verdict = Verdict.RUN
            row = db.execute("SELECT * FROM operations WHERE operation_id = ?", (operation_id,)).fetchone()
        return verdict, _entry(row)

    def renew(self, operation_id: str, *, owner: str | None = None, now: float | None = None) -> bool:
        """Extend the lease; False if this process no longer holds it."""
        owner = owner or owner_id()
        now = time.time() if now is None else now
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE operations SET lease_expires = ? WHERE operation_id = ? AND lease_owner = ? AND state = ?",
                (now + self.lease_seconds, operation_id, owner, State.RUNNING),
            )
            return cursor.rowcount == 1

    def finish(self, operation_id: str, report: dict[str, Any], *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.execute(
                "UPDATE operations SET state = ?, report = ?, finished = ?, lease_owner = '', lease_expires = 0"
                " WHERE operation_id = ?",
                (State.DONE, json.dumps(report), now, operation_id),
            )

    def get(self, operation_id: str) -> Entry | None:
        row = self._db().execute("SELECT * FROM operations WHERE operation_id = ?", (operation_id,)).fetchone()
        return _entry(row) if row else None

    def unfinished(self, *, now: float | None = None) -> list[Entry]:
        """Running operations whose run died mid-way (lease expired or owner gone)."""
        now = time.time() if now is None else now
        rows = self._db().execute("SELECT * FROM operations WHERE state = ? ORDER BY started",
                                  (State.RUNNING,)).fetchall()
        entries = [_entry(r) for r in rows]
        return [e for e in entries if e.lease_expires <= now or not owner_alive(e.lease_owner)]

    def prune(self, older_than: float) -> int:
        """Forget finished operations older than `older_than` seconds."""
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM operations WHERE state = ? AND finished < ?",
                                (State.DONE, time.time() - older_than))
            return cursor.rowcount


_COLUMNS = ("operation_id", "task", "target", "state", "deliveries", "lease_owner", "lease_expires", "body",
            "report", "started", "finished")


def _entry(row: tuple) -> Entry:
    values = dict(zip(_COLUMNS, row, strict=True))
    return Entry(
        operation_id=values["operation_id"], task=values["task"], target=values["target"], state=values["state"],
        deliveries=values["deliveries"], lease_owner=values["lease_owner"], lease_expires=values["lease_expires"],
        body=json.loads(values["body"]), report=json.loads(values["report"]) if values["report"] else None,
    )
