"""A VPS console: the pty master, a bounded ring buffer of its output, attached clients."""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import socket
import struct
import termios
import threading
import time

RING_SIZE = 64 * 1024
CLIENT_BACKLOG = 256  # chunks queued per attached client before it is dropped as too slow


class Subscriber:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.chunks: queue.Queue[bytes | None] = queue.Queue(CLIENT_BACKLOG)

    def push(self, data: bytes | None) -> bool:
        try:
            self.chunks.put_nowait(data)
            return True
        except queue.Full:
            return False

    def pump(self) -> None:
        """Send queued output until detached (thread body)."""
        while (data := self.chunks.get()) is not None:
            try:
                self.sock.sendall(data)
            except OSError:
                return


class Console:
    def __init__(self, ctid: int, ring_size: int = RING_SIZE) -> None:
        self.ctid = ctid
        self.ring = bytearray()
        self.ring_size = ring_size
        self.master: int | None = None
        self.lock = threading.Lock()
        self.subscribers: set[Subscriber] = set()

    def set_master(self, master: int | None) -> None:
        with self.lock:
            if self.master is not None:
                with contextlib.suppress(OSError):
                    os.close(self.master)
            self.master = master

    def feed(self, data: bytes) -> None:
        """Output read from the master: into the ring (oldest bytes dropped) and to every client."""
        with self.lock:
            self.ring += data
            if len(self.ring) > self.ring_size:
                del self.ring[: len(self.ring) - self.ring_size]
            slow = [s for s in self.subscribers if not s.push(data)]
            for sub in slow:
                self._drop(sub)

    def subscribe(self, sock: socket.socket) -> tuple[Subscriber, bytes]:
        """Attach: the buffered output so far, and a subscriber for what follows (atomically)."""
        sub = Subscriber(sock)
        with self.lock:
            self.subscribers.add(sub)
            return sub, bytes(self.ring)

    def unsubscribe(self, sub: Subscriber) -> None:
        with self.lock:
            self._drop(sub)

    def _drop(self, sub: Subscriber) -> None:
        if sub in self.subscribers:
            self.subscribers.discard(sub)
            with contextlib.suppress(queue.Full):
                sub.chunks.put_nowait(None)
            with contextlib.suppress(OSError):
                sub.sock.shutdown(socket.SHUT_RDWR)

    def write(self, data: bytes) -> None:
        """Input from an attached client (blocking; a console that does not read stalls only
        that client's thread)."""
        master = self.master
        if master is None:
            return
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(master, view):]
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                return

    def resize(self, cols: int, rows: int) -> None:
        """TIOCSWINSZ on the master: the VPS's foreground process gets SIGWINCH."""
        master = self.master
        if master is not None:
            with contextlib.suppress(OSError):
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def close(self) -> None:
        self.set_master(None)
        with self.lock:
            for sub in list(self.subscribers):
                self._drop(sub)
