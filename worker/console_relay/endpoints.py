"""The VPS side of a console session: the supervisor's console, or a fresh login shell on a pty of its own."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
import struct
import termios
from collections.abc import Callable
from typing import Protocol

from kernel.enter import Attached
from kernel.errors import KernelError, NotFound
from kernel.runtime import Runtime
from worker.cli.vzctl import ENTER_SHELL
from worker.supervisor.client import Client

LOGIN_SHELL = ["sh", "-c", ENTER_SHELL]  # what `vzctl enter` runs


class Endpoint(Protocol):
    # Flow-control policy when the browser lags: "drop" output (the console must keep being read, or the
    # supervisor drops us) or "pause" reading (the shell's writes then block in the VPS).
    policy: str

    def read(self, size: int, timeout: float) -> bytes | None:
        """Output: bytes, b"" at the end, None when nothing came within `timeout`."""

    def write(self, data: bytes) -> None: ...

    def resize(self, cols: int, rows: int) -> None: ...

    def close(self) -> None: ...


def _ready(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def set_winsize(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class ConsoleEndpoint:
    """Attached to the console the supervisor holds (its ring buffer first); closing detaches."""

    policy = "drop"

    def __init__(self, client: Client, ctid: int) -> None:
        self.client = client
        self.ctid = ctid
        self.sock: socket.socket = client.console(ctid)

    def read(self, size: int, timeout: float) -> bytes | None:
        if not _ready(self.sock.fileno(), timeout):
            return None
        try:
            return self.sock.recv(size)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def resize(self, cols: int, rows: int) -> None:
        self.client.request("resize", ctid=self.ctid, cols=cols, rows=rows)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class PtyEndpoint:
    """A pty master we hold: a login shell in the VPS (`shell_endpoint`); `close` ends what runs on it."""

    def __init__(self, master: int, close: Callable[[], None], policy: str = "pause") -> None:
        self.master = master
        self._close = close
        self.policy = policy

    def read(self, size: int, timeout: float) -> bytes | None:
        if not _ready(self.master, timeout):
            return None
        try:
            return os.read(self.master, size)
        except OSError:  # EIO: everything on the pty exited
            return b""

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            select.select([], [self.master], [], 1.0)
            try:
                view = view[os.write(self.master, view):]
            except BlockingIOError:
                continue

    def resize(self, cols: int, rows: int) -> None:
        set_winsize(self.master, cols, rows)

    def close(self) -> None:
        self._close()


def shell_endpoint(rt: Runtime, ctid: int) -> PtyEndpoint:
    """A login shell in the VPS on a new pty of the VPS's own devpts; closing the session kills it."""
    attached: Attached = rt.spawn(ctid, LOGIN_SHELL, tty=True)
    assert attached.master is not None

    def close() -> None:
        attached.kill()
        attached.close()
        with contextlib.suppress(KernelError, ChildProcessError):
            attached.wait()

    return PtyEndpoint(attached.master, close)


def open_endpoint(rt: Runtime, state_root: str, ctid: int, mode: str) -> Endpoint:
    """The endpoint of `mode` for a running VPS of this node; KernelError (plain words) when there is none."""
    status = rt.status(ctid)
    if not status.exists:
        raise NotFound(f"CT {ctid} does not exist on this node")
    if not status.running:
        raise NotFound(f"CT {ctid} is not running")
    if status.frozen:
        raise NotFound(f"CT {ctid} is paused")
    if mode == "shell":
        return shell_endpoint(rt, ctid)
    client = Client.for_state_root(state_root)
    if client is None:
        raise NotFound("the node supervisor, which holds the consoles, is not running")
    client.timeout = 10.0
    return ConsoleEndpoint(client, ctid)
