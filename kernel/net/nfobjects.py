"""Reading nftables tables and named counters straight from netlink, for the usage sampler.

Every nft(8) run fills its cache with the whole ruleset first: with 140 VPS
tables that is ~0.8 s of CPU per call, whatever is listed. The traffic
sampler only needs each table's handle and the values of the named counters,
which the kernel dumps on their own (NFT_MSG_GETTABLE, and NFT_MSG_GETOBJ
filtered to counter objects): a few milliseconds. Read-only; every change
still goes through nft (kernel/net/nft.py).
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Iterator

from kernel.errors import from_errno
from kernel.net.ip import socket_in
from kernel.net.nft import Counter

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETTABLE, NFT_MSG_GETRULE, NFT_MSG_GETOBJ = 1, 7, 19
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NFTA_TABLE_NAME, NFTA_TABLE_HANDLE = 1, 4
NFTA_OBJ_TABLE, NFTA_OBJ_NAME, NFTA_OBJ_TYPE, NFTA_OBJ_DATA = 1, 2, 3, 4
NFTA_COUNTER_BYTES, NFTA_COUNTER_PACKETS = 1, 2
NFT_OBJECT_COUNTER = 1
NLA_TYPE_MASK = 0x3FFF
FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}

_HEADER = struct.Struct("=IHHII")  # nlmsghdr
_NFGEN = struct.Struct("=BBH")  # nfgenmsg: family, version, resource id (big-endian, unused here)
_ATTR = struct.Struct("=HH")


@contextlib.contextmanager
def _socket_in(netns: str | None) -> Iterator[socket.socket]:
    """A netfilter netlink socket made inside `netns`."""
    with socket_in(netns, NETLINK_NETFILTER) as sock:
        sock.bind((0, 0))
        yield sock


def _attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    out = {}
    while offset + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size:
            break
        out[kind & NLA_TYPE_MASK] = data[offset + _ATTR.size : offset + length]
        offset += (length + 3) & ~3
    return out


def _dump(sock: socket.socket, message: int, attrs: bytes, seq: int) -> Iterator[tuple[int, dict[int, bytes]]]:
    """(family, attributes) of each message of one dump."""
    body = _NFGEN.pack(0, 0, 0) + attrs
    kind = (NFNL_SUBSYS_NFTABLES << 8) | message
    sock.send(_HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
    while True:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, kind, _, reply_seq, _ = _HEADER.unpack_from(data, offset)
            payload = data[offset + _HEADER.size : offset + length]
            offset += (length + 3) & ~3
            if reply_seq != seq:
                continue
            if kind == NLMSG_DONE:
                return
            if kind == NLMSG_ERROR:
                (error,) = struct.unpack_from("=i", payload)
                if error:
                    raise from_errno(-error, "nftables netlink dump")
                continue
            family = payload[0]
            yield family, _attrs(payload, _NFGEN.size)


def _string(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode()


def read(netns: str | None) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], dict[str, Counter]]]:
    """({(family, table): handle}, {(family, table): {counter name: Counter}}) of every table in `netns`."""
    tables: dict[tuple[str, str], int] = {}
    counters: dict[tuple[str, str], dict[str, Counter]] = {}
    with _socket_in(netns) as sock:
        for family, attrs in _dump(sock, NFT_MSG_GETTABLE, b"", 1):
            key = (FAMILIES.get(family, str(family)), _string(attrs[NFTA_TABLE_NAME]))
            tables[key] = struct.unpack(">Q", attrs[NFTA_TABLE_HANDLE])[0]
        only_counters = _ATTR.pack(_ATTR.size + 4, NFTA_OBJ_TYPE) + struct.pack(">I", NFT_OBJECT_COUNTER)
        for family, attrs in _dump(sock, NFT_MSG_GETOBJ, only_counters, 2):
            if struct.unpack(">I", attrs.get(NFTA_OBJ_TYPE, b"\0\0\0\0"))[0] != NFT_OBJECT_COUNTER:
                continue
            data = _attrs(attrs.get(NFTA_OBJ_DATA, b""))
            key = (FAMILIES.get(family, str(family)), _string(attrs[NFTA_OBJ_TABLE]))
            counters.setdefault(key, {})[_string(attrs[NFTA_OBJ_NAME])] = Counter(
                packets=struct.unpack(">Q", data[NFTA_COUNTER_PACKETS])[0],
                bytes=struct.unpack(">Q", data[NFTA_COUNTER_BYTES])[0])
    return tables, counters


def rule_count(netns: str | None) -> int:
    """How many rules every table of `netns` holds (one NFT_MSG_GETRULE dump; the accounting tier's numiptent)."""
    with _socket_in(netns) as sock:
        return sum(1 for _ in _dump(sock, NFT_MSG_GETRULE, b"", 1))
