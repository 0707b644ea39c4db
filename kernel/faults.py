"""Named fault-injection points, for tests of what a failed or interrupted operation leaves behind.

A multi-step operation calls `point("create.volume")` after each step whose
undo it registered. Nothing happens unless the node's environment names the
point in `CTPANEL_FAULTS` (a comma-separated list of `name`, `name:crash` or `name:hold`):

- `name` raises `InjectedFault` there, so the operation's reverter runs;
- `name:crash` kills the calling process with SIGKILL, as a power cut of that
  process would: no reverter, no report; the redelivered message must finish;
- `name:hold` stops the calling process there for up to `HOLD_SECONDS`, so a
  test can kill it (or its worker) from outside at that step; then it goes on.

With `CTPANEL_FAULTS_DIR` set, each point fires once: the first hit leaves a
marker file named after the point there, holding the pid of the process that
hit it (the one a test kills), and later hits (the redelivery) pass.
Only root sets a node's environment, so this is no way in for a customer.
"""

from __future__ import annotations

import os
import signal
import time

from kernel.errors import KernelError

ENV = "CTPANEL_FAULTS"
ENV_DIR = "CTPANEL_FAULTS_DIR"
HOLD_SECONDS = 60.0


class InjectedFault(KernelError):
    """Reported with the generic kernel error code; the message names the point."""


def _armed(name: str) -> str | None:
    """The mode of `name` when the environment arms it ("raise", "crash" or "hold"), else None."""
    spec = os.environ.get(ENV)
    if not spec:
        return None
    for item in spec.split(","):
        point, _, mode = item.strip().partition(":")
        if point == name:
            return mode or "raise"
    return None


def _first_hit(name: str) -> bool:
    directory = os.environ.get(ENV_DIR)
    if not directory:
        return True
    try:
        fd = os.open(os.path.join(directory, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)
    return True


def point(name: str) -> None:
    """A named place where a test may make the operation fail or its process die."""
    mode = _armed(name)
    if mode is None or not _first_hit(name):
        return
    if mode == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "hold":
        time.sleep(HOLD_SECONDS)
        return
    raise InjectedFault(f"injected fault at {name}")
