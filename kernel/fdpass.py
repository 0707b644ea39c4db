"""Message sockets between a host process and its helpers, with descriptors passed over them.

The `socket` module costs about 2 ms to import (it builds enums of every address
family and flag); `vzctl exec` must start within a few milliseconds of a bare
interpreter (issue 4), so the helpers' channel uses the `_socket` extension
directly. Its socket objects have the methods used here (`sendmsg`, `recvmsg`,
`send`, `settimeout`, `setblocking`, `close`); timeouts raise `TimeoutError`.
"""

from __future__ import annotations

import _socket
import array

Socket = _socket.socket


def seqpacket_pair() -> tuple[Socket, Socket]:
    """A connected AF_UNIX SOCK_SEQPACKET pair (close-on-exec): message boundaries are kept."""
    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)


def send_fds(sock: Socket, data: bytes, fds: list[int]) -> None:
    """Send one message carrying `fds` (SCM_RIGHTS)."""
    sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array.array("i", fds))])


def recv_fds(sock: Socket, bufsize: int, maxfds: int) -> tuple[bytes, list[int]]:
    """One message and the descriptors it carried (received close-on-exec). A message of
    b"" is the peer's end; descriptors beyond `maxfds` are closed by the kernel (MSG_CTRUNC)."""
    fds = array.array("i")
    data, ancdata, _, _ = sock.recvmsg(bufsize, _socket.CMSG_LEN(maxfds * fds.itemsize), _socket.MSG_CMSG_CLOEXEC)
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)
