"""Client of the node supervisor (node worker, vzctl): requests over its root-only socket."""

from __future__ import annotations

import os
import socket
from typing import Any

from kernel.errors import KernelError
from worker.supervisor import protocol


def try_request(state_root: str, op: str, **args: Any) -> dict[str, Any] | None:
    """The reply of this node's supervisor, or None when it does not run (no socket, or a stale
    one after a crash): the caller then acts through the library itself, and the init it
    starts is adopted when the supervisor comes back (see docs/supervisor.md)."""
    client = Client.for_state_root(state_root)
    if client is None:
        return None
    try:
        return client.request(op, **args)
    except (FileNotFoundError, ConnectionRefusedError):
        return None


class Client:
    def __init__(self, path: str, *, timeout: float | None = 120.0) -> None:
        self.path = path
        self.timeout = timeout

    @classmethod
    def for_state_root(cls, state_root: str) -> Client | None:
        """A client when this node's supervisor socket exists, else None."""
        path = protocol.socket_path(state_root)
        return cls(path) if os.path.exists(path) else None

    def _open(self, op: str, args: dict[str, Any]) -> tuple[socket.socket, dict[str, Any]]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
            sock.sendall(protocol.encode({"v": protocol.VERSION, "op": op, **args}))
            reply = protocol.decode(protocol.read_line(sock) or b"null")
        except BaseException:
            sock.close()
            raise
        if not reply.get("ok"):
            sock.close()
            error = protocol.ERRORS.get(str(reply.get("error")), KernelError)
            raise error(str(reply.get("message", "supervisor: request failed")))
        return sock, reply

    def request(self, op: str, **args: Any) -> dict[str, Any]:
        sock, reply = self._open(op, args)
        sock.close()
        return reply

    def start(self, ctid: int) -> dict[str, Any]:
        return self.request("start", ctid=ctid)["status"]

    def restart(self, ctid: int, *, timeout: float = 30.0) -> dict[str, Any]:
        return self.request("restart", ctid=ctid, timeout=timeout)["status"]

    def stop(self, ctid: int, *, fast: bool = False, timeout: float = 30.0) -> dict[str, Any]:
        return self.request("stop", ctid=ctid, fast=fast, timeout=timeout)["status"]

    def status(self, ctid: int) -> dict[str, Any]:
        return self.request("status", ctid=ctid)["status"]

    def list(self) -> list[dict[str, Any]]:
        return self.request("list")["vpss"]

    def console(self, ctid: int) -> socket.socket:
        """Attach to the VPS's console: a stream socket (buffered output first, then live;
        what is sent goes to the console). Closing it detaches; the console keeps running."""
        sock, _ = self._open("console", {"ctid": ctid})
        sock.settimeout(None)
        return sock
