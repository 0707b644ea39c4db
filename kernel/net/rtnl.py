"""rtnetlink change requests packed by hand: the links, addresses, routes and neighbours a VPS
start makes (kernel/net/ip.py's `*_add`, `link_set` and `index`).

pyroute2 costs ~0.6-0.8 ms of CPU per request (its asyncio round per call, message classes)
and ~0.6 ms per socket; a start makes ~11 requests on two sockets, ~8 ms of the supervisor's
~18 ms per start. Here a request is a struct.pack, one send and one recv (~30 µs). Dumps and
the rarer requests stay with pyroute2 (`IP` opens it only when one is made).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

from kernel.errors import KernelError, from_errno

RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE, RTM_NEWNEIGH = 16, 18, 20, 24, 28
NLM_F_REQUEST, NLM_F_ACK, NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x100, 0x200, 0x400
NLMSG_ERROR = 2
NLA_F_NESTED = 0x8000
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 1, 3, 10, 18, 20, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
NDA_DST, NDA_LLADDR = 1, 2
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_STATIC, RTN_UNICAST, RTNH_F_ONLINK = 254, 4, 1, 4
NTF_PROXY, NUD_PERMANENT = 0x08, 0x80
CREATE = NLM_F_CREATE | NLM_F_EXCL  # `ip ... add`
REPLACE = NLM_F_CREATE | NLM_F_REPLACE  # `ip ... replace`

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def name(value: str) -> bytes:
    return value.encode() + b"\0"


def mac(value: str) -> bytes:
    return bytes.fromhex(value.replace(":", ""))


def u32(value: int) -> bytes:
    return struct.pack("=I", value)


def ifinfo(index: int = 0, *, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


def ifaddr(index: int, cidr: str, *, flags: int = 0) -> bytes:
    """ifaddrmsg and attributes of `ip addr add CIDR dev INDEX` (scope global)."""
    iface = ipaddress.ip_interface(cidr)
    family = socket.AF_INET6 if iface.version == 6 else socket.AF_INET
    local = iface.ip.packed
    body = struct.pack("=BBBBI", family, iface.network.prefixlen, flags & 0xFF, 0, index)
    body += attr(IFA_LOCAL, local) + attr(IFA_ADDRESS, local)
    return body + (attr(IFA_FLAGS, u32(flags)) if flags else b"")


def rtmsg(index: int, dst: str, via: str | None = None, *, onlink: bool = False) -> bytes:
    """rtmsg and attributes of `ip route replace DST [via GW] dev INDEX [onlink]` ("default": any
    destination of the gateway's family), in the main table, proto static, scope global."""
    net = None if dst == "default" else ipaddress.ip_network(dst, strict=False)
    version = net.version if net is not None else ipaddress.ip_address(via or "").version
    family = socket.AF_INET6 if version == 6 else socket.AF_INET
    body = struct.pack("=BBBBBBBBI", family, net.prefixlen if net is not None else 0, 0, 0, RT_TABLE_MAIN,
                       RTPROT_STATIC, 0, RTN_UNICAST, RTNH_F_ONLINK if onlink else 0)
    if net is not None:
        body += attr(RTA_DST, net.network_address.packed)
    if via:
        body += attr(RTA_GATEWAY, ipaddress.ip_address(via).packed)
    return body + attr(RTA_OIF, u32(index))


def ndmsg(index: int, addr: str, *, lladdr: str | None = None, proxy: bool = False) -> bytes:
    """ndmsg and attributes of `ip neigh replace ADDR lladdr MAC dev INDEX nud permanent`, or of a
    proxy entry (`proxy`)."""
    ip = ipaddress.ip_address(addr)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    state, flags = (0, NTF_PROXY) if proxy else (NUD_PERMANENT, 0)
    body = struct.pack("=BxxxiHBB", family, index, state, flags, 0) + attr(NDA_DST, ip.packed)
    return body + (attr(NDA_LLADDR, mac(lladdr)) if lladdr else b"")


class Rtnl:
    """Requests on one rtnetlink socket (the caller's: made in the namespace it works in)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._seq = 0

    def _send(self, kind: int, flags: int, body: bytes) -> int:
        self._seq += 1
        self.sock.send(_HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST | flags, self._seq, 0) + body)
        return self._seq

    def _reply(self, seq: int) -> tuple[int, bytes]:
        """(type, payload) of the answer to request `seq` (stale answers are skipped)."""
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                size, kind, _, got, _ = _HEADER.unpack_from(data, offset)
                if size < _HEADER.size:
                    raise KernelError("rtnetlink: malformed answer", errno=errno.EIO)
                if got == seq:
                    return kind, data[offset + _HEADER.size:offset + size]
                offset += (size + 3) & ~3

    def change(self, kind: int, flags: int, body: bytes, what: str, *, ok: tuple[int, ...] = ()) -> None:
        """Send a change request and wait for its acknowledgement; a refusal raises the errno's
        `KernelError` (or is taken as done when its errno is in `ok`)."""
        reply, payload = self._reply(self._send(kind, flags | NLM_F_ACK, body))
        code = -struct.unpack_from("=i", payload)[0] if reply == NLMSG_ERROR else 0
        if code and code not in ok:
            raise from_errno(code, what)

    def link_index(self, ifname: str) -> int | None:
        """The ifindex of link `ifname` (one RTM_GETLINK); None when there is none."""
        reply, payload = self._reply(self._send(RTM_GETLINK, 0, ifinfo() + attr(IFLA_IFNAME, name(ifname))))
        if reply == NLMSG_ERROR:
            code = -struct.unpack_from("=i", payload)[0]
            if code == errno.ENODEV:
                return None
            raise from_errno(code, f"link show {ifname}")
        return int(_IFINFO.unpack_from(payload)[2])
