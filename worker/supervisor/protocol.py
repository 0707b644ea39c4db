"""The supervisor's socket protocol: one JSON object per line, both ways (docs/supervisor.md)."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from kernel import errors

VERSION = 1
SOCKET_NAME = "supervisor.sock"
MAX_LINE = 64 * 1024
OPS = ("start", "stop", "restart", "status", "list", "console", "resize")
# Errors travel by class name; the client raises the same KernelError subclass.
ERRORS: dict[str, type[errors.KernelError]] = {
    cls.__name__: cls
    for cls in (errors.NotFound, errors.AlreadyExists, errors.PermissionDenied, errors.Busy, errors.NoSpace,
                errors.LimitReached, errors.InvalidArgument, errors.NotSupported, errors.Timeout)
}


def socket_path(state_root: str) -> str:
    """Under the runtime's root-only run directory (0700): `<state_root>/run/supervisor.sock`."""
    return os.path.join(state_root, "run", SOCKET_NAME)


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def read_line(sock: socket.socket) -> bytes:
    """One line, read byte-wise so nothing after it (a console stream) is consumed."""
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            break
        line += byte
        if len(line) > MAX_LINE:
            raise errors.InvalidArgument("supervisor protocol: line too long")
    return bytes(line)


def decode(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise errors.InvalidArgument(f"supervisor protocol: not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise errors.InvalidArgument("supervisor protocol: not an object")
    return message
