"""Undo finished steps of a multi-step operation when a later step fails (Incus's reverter)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger(__name__)


class Reverter:
    """Collect undo callbacks; run them newest first unless `success()` was called.

    ::

        with Reverter() as revert:
            make_cgroup(); revert.add(remove_cgroup)
            start_init()                 # raises -> cgroup removed
            revert.success()
    """

    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], object]]] = []
        self._done = False

    def add(self, undo: Callable[[], object], what: str = "") -> None:
        self._undo.append((what or getattr(undo, "__name__", "undo"), undo))

    def success(self) -> None:
        """Keep everything: the operation finished."""
        self._done = True
        self._undo.clear()

    def fail(self) -> None:
        """Run every undo callback, newest first; an undo that fails is logged, not raised."""
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except Exception:
                log.exception("revert step %s failed", what)

    def __enter__(self) -> Reverter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.fail()
