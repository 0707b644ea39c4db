"""Host-side state files: JSON written atomically (temp file, fsync, rename) and flock'ed."""

from __future__ import annotations

import _thread
import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from typing import Any

from kernel.errors import Busy, from_oserror


def ensure_dir(path: str, mode: int = 0o700) -> str:
    """Create `path` (and parents) owned by root with `mode`; state dirs are never world-readable."""
    try:
        os.makedirs(path, mode=mode, exist_ok=True)
    except OSError as exc:
        raise from_oserror(exc, "cannot create state directory") from exc
    return path


def write_json(path: str, data: Any, *, durable: bool = True) -> None:
    """Replace `path` with `data` as JSON; readers see the old or the new file, never half.

    `durable=False` skips the fsync, for state a host reboot makes stale anyway (a running
    init's PID): a crash may then leave the file empty, so its readers must accept that."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n", durable=durable)


def write_text(path: str, text: str, *, durable: bool = True) -> None:
    """Replace `path` with `text`, as `write_json` does."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, text.encode())
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise from_oserror(exc, "cannot write state file") from exc


def read_json(path: str) -> Any:
    """The parsed content of `path`; `NotFound` when it does not exist."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as exc:
        raise from_oserror(exc, "cannot read state file") from exc


def remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# A flock belongs to the open file description, and a forked child shares it: in a threaded
# process (the supervisor) a VPS init forked by one thread, waiting for its exec, would keep
# another thread's lock held after that thread let go. Children close the lock fds at fork.
_held_locks: set[int] = set()
_open_guard = _thread.allocate_lock()


def _close_held_locks_in_child() -> None:
    global _open_guard
    for fd in _held_locks:
        with contextlib.suppress(OSError):
            os.close(fd)
    _held_locks.clear()
    _open_guard = _thread.allocate_lock()


os.register_at_fork(before=lambda: _open_guard.acquire(), after_in_parent=lambda: _open_guard.release(),
                    after_in_child=_close_held_locks_in_child)


@contextlib.contextmanager
def flocked(path: str, *, wait: bool | float = True) -> Iterator[int]:
    """Hold an exclusive flock on `path` (created if missing) for the `with` block.

    `wait`: True blocks until the lock is free; False (or 0) raises `Busy` at once if it is
    held (vzctl's "locked"); a number of seconds waits that long before raising `Busy`.
    """
    with _open_guard:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise from_oserror(exc, "cannot open lock file") from exc
        _held_locks.add(fd)
    try:
        _flock(fd, path, wait)
        yield fd
    finally:
        with _open_guard:
            _held_locks.discard(fd)
            os.close(fd)


def _flock(fd: int, path: str, wait: bool | float) -> None:
    if wait is True:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + float(wait)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError as exc:
            if time.monotonic() >= deadline:
                raise Busy("locked by another operation", path=path) from exc
        time.sleep(0.02)
