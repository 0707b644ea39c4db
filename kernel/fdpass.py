"""Message sockets between a host process and its helpers, with descriptors passed over them.

The `socket` module costs about 2 ms to import (it builds enums of every address
family and flag); `vzctl exec` must start within a few milliseconds of a bare
interpreter (issue 4), so the helpers' channel uses the `_socket` extension
directly. Its socket objects have the methods used here (`sendmsg`, `recvmsg`,
`send`, `settimeout`, `setblocking`, `close`); timeouts raise `TimeoutError`.
Descriptors are packed as C ints by hand: `array` imports collections.abc (~0.2 ms).
"""

from __future__ import annotations

import _socket
import sys

Socket = _socket.socket
_INT = 4  # sizeof(int): a descriptor in SCM_RIGHTS


def seqpacket_pair() -> tuple[Socket, Socket]:
    """A connected AF_UNIX SOCK_SEQPACKET pair (close-on-exec): message boundaries are kept."""
    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)


def send_fds(sock: Socket, data: bytes, fds: list[int]) -> None:
    """Send one message carrying `fds` (SCM_RIGHTS)."""
    ints = b"".join(fd.to_bytes(_INT, sys.byteorder) for fd in fds)
    sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, ints)])


def recv_fds(sock: Socket, bufsize: int, maxfds: int) -> tuple[bytes, list[int]]:
    """One message and the descriptors it carried (received close-on-exec). A message of
    b"" is the peer's end; descriptors beyond `maxfds` are closed by the kernel (MSG_CTRUNC)."""
    fds: list[int] = []
    data, ancdata, _, _ = sock.recvmsg(bufsize, _socket.CMSG_LEN(maxfds * _INT), _socket.MSG_CMSG_CLOEXEC)
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            whole = len(payload) - len(payload) % _INT
            fds += (int.from_bytes(payload[i : i + _INT], sys.byteorder) for i in range(0, whole, _INT))
    return data, fds
