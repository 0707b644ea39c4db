"""A small typed facade over pyroute2 in the vocabulary of ip(8).

`IP(netns)` opens one rtnetlink socket in a network namespace given by name
(/run/netns/NAME) or path (/proc/PID/ns/net); `socket_in` makes it there: the
calling thread enters the namespace for the socket() call only and comes
straight back (a socket stays in the namespace it was made in), which costs
well under a millisecond where pyroute2's own way, a forked child per socket,
cost a node worker ~10 ms of CPU. `None` is the worker's own namespace.
The requests of a VPS start (`veth_add`, `link_set`, `addr_add`, `route_add`,
`neigh_add*`, `index`) are packed by `kernel.net.rtnl`; dumps and the rest go
through pyroute2, whose socket is opened at the first of them.
Every `*_add` is an ensure (an existing identical object is fine), every
`*_del` is idempotent, and netlink errors surface as `KernelError`
subclasses chosen from the errno.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute, config
from pyroute2.netlink.exceptions import NetlinkError

from kernel import syscalls as sc
from kernel.errors import InvalidArgument, KernelError, NotFound, from_errno
from kernel.net import rtnl

IFNAMSIZ = 15
NETLINK_ROUTE = 0

# pyroute2 ends a forked namespace child with SIGTERM. The child inherits the caller's handlers:
# in a Celery pool process (or the supervisor) that handler ran the parent's shutdown code in the
# child, which took the pool process down with it. The child must die on SIGTERM as such.
config.disable_mp_signal = True


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str
    mac: str
    up: bool
    master: int | None
    rx_bytes: int = 0
    rx_packets: int = 0
    tx_bytes: int = 0
    tx_packets: int = 0
    alias: str = ""  # IFLA_IFALIAS: kernel/net/network.py tags a VPS's host veths with their node and CTID


def check_ifname(name: str) -> str:
    if not name or len(name) > IFNAMSIZ or any(c in name for c in "/ :\n\0") or name in (".", ".."):
        raise InvalidArgument(f"bad interface name {name!r} (1-{IFNAMSIZ} characters, no '/', ':' or spaces)")
    return name


def netns_path(netns: str | None) -> str | None:
    """The file a namespace name or path refers to (None: the worker's own namespace)."""
    if netns is None:
        return None
    return netns if "/" in netns else f"/run/netns/{netns}"


@contextlib.contextmanager
def entered(netns: str | None) -> Iterator[None]:
    """This thread in `netns` (None: where it is) for the block, and back: what is made there
    (a socket, an open /proc/sys/net file) stays bound to that namespace."""
    path = netns_path(netns)
    if path is None:
        yield
        return
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound("network namespace is gone", path=path) from None
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(target, sc.CLONE_NEWNET)
        try:
            yield
        finally:
            sc.setns(home, sc.CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(home)


def socket_in(netns: str | None, proto: int, kind: int = socket.SOCK_RAW) -> socket.socket:
    """A netlink socket of `proto` made inside `netns` (None: here)."""
    with entered(netns):
        return socket.socket(socket.AF_NETLINK, kind | socket.SOCK_CLOEXEC, proto)


def set_sysctl(netns: str | None, key: str, value: str) -> None:
    """`sysctl -w key=value` in `netns` without a process: /proc/sys/net is the namespace of the
    thread that opens the file, so the open happens inside it (`key` in sysctl's dotted form,
    an interface name in it without dots)."""
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with entered(netns):
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise from_errno(exc.errno or errno.EIO, f"cannot set sysctl {key}", path) from exc


def _link(msg: Any) -> Link:
    info = msg.get_attr("IFLA_LINKINFO")
    stats = msg.get_attr("IFLA_STATS64") or {}
    return Link(
        index=msg["index"],
        name=msg.get_attr("IFLA_IFNAME"),
        kind=(info.get_attr("IFLA_INFO_KIND") if info else "") or "",
        mac=msg.get_attr("IFLA_ADDRESS") or "",
        up=bool(msg["flags"] & 1),
        master=msg.get_attr("IFLA_MASTER"),
        rx_bytes=stats.get("rx_bytes", 0),
        rx_packets=stats.get("rx_packets", 0),
        tx_bytes=stats.get("tx_bytes", 0),
        tx_packets=stats.get("tx_packets", 0),
        alias=msg.get_attr("IFLA_IFALIAS") or "",
    )


def _wrap(exc: NetlinkError, what: str) -> KernelError:
    return from_errno(exc.code, what)


class IP:
    """An rtnetlink socket in `netns` (and pyroute2's, once needed); use as a context manager."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._rtnl = rtnl.Rtnl(self._socket(socket.SOCK_RAW))
        self._pyroute2: IPRoute | None = None
        self._indexes: dict[str, int] = {}

    def _socket(self, kind: int) -> socket.socket:
        try:
            return socket_in(self.netns, NETLINK_ROUTE, kind)
        except OSError as exc:
            raise from_errno(exc.errno or errno.EIO, "cannot open rtnetlink", netns_path(self.netns)) from exc

    @property
    def _ipr(self) -> IPRoute:
        """pyroute2 on a socket of its own in the namespace, opened at its first use."""
        if self._pyroute2 is None:
            sock = self._socket(socket.SOCK_DGRAM)  # asyncio, under pyroute2, takes datagram sockets only
            try:
                self._pyroute2 = IPRoute(fileno=sock.fileno())
            except BaseException:
                sock.close()
                raise
            sock.detach()  # pyroute2 owns the descriptor now
        return self._pyroute2

    def close(self) -> None:
        self._rtnl.sock.close()
        if self._pyroute2 is not None:
            self._pyroute2.close()

    def __enter__(self) -> IP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn: Any, *args: Any, ok: tuple[int, ...] = (), **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NetlinkError as exc:
            if exc.code in ok:
                return None
            raise _wrap(exc, what) from exc

    # -- link -------------------------------------------------------------------------
    def links(self) -> list[Link]:
        """Every link with its counters: one netlink dump."""
        return [_link(msg) for msg in self._call("link show", self._ipr.get_links)]

    def link(self, name: str) -> Link | None:
        """One link by name, asked for alone (a dump of every link costs ~1 ms per 20 links)."""
        for msg in self._call(f"link show {name}", self._ipr.link, "get", ifname=check_ifname(name),
                              ok=(errno.ENODEV,)) or ():
            return _link(msg)
        return None

    def index(self, name: str) -> int:
        """NAME's ifindex, asked once per `IP` (a lookup decodes the whole link, ~1 ms; a VPS start needs
        ~18): callers hold the VPS's lock for an `IP`'s short life, and this object's own `link_del` and
        `link_set` moves and renames forget the name."""
        index = self._indexes.get(name)
        if index is None:
            found = self._rtnl.link_index(check_ifname(name))
            if found is None:
                raise NotFound(f"no such interface {name!r}", path=self.netns)
            index = self._indexes[name] = found
        return index

    def veth_add(
        self, name: str, peer: str, *, peer_netns: str | None = None, mac: str = "", peer_mac: str = ""
    ) -> int:
        """`ip link add NAME type veth peer name PEER [netns NS]`; ensure: an existing veth NAME is kept."""
        fd = os.open(netns_path(peer_netns) or "", os.O_RDONLY | os.O_CLOEXEC) if peer_netns is not None else -1
        try:
            peer_attrs = rtnl.attr(rtnl.IFLA_IFNAME, rtnl.name(check_ifname(peer)))
            if peer_mac:
                peer_attrs += rtnl.attr(rtnl.IFLA_ADDRESS, rtnl.mac(peer_mac))
            if fd >= 0:
                peer_attrs += rtnl.attr(rtnl.IFLA_NET_NS_FD, rtnl.u32(fd))
            body = rtnl.ifinfo() + rtnl.attr(rtnl.IFLA_IFNAME, rtnl.name(check_ifname(name)))
            if mac:
                body += rtnl.attr(rtnl.IFLA_ADDRESS, rtnl.mac(mac))
            body += rtnl.nested(rtnl.IFLA_LINKINFO, rtnl.attr(rtnl.IFLA_INFO_KIND, rtnl.name("veth")),
                                rtnl.nested(rtnl.IFLA_INFO_DATA,
                                            rtnl.attr(rtnl.VETH_INFO_PEER, rtnl.ifinfo() + peer_attrs)))
            try:
                self._rtnl.change(rtnl.RTM_NEWLINK, rtnl.CREATE, body, f"link add {name}")
            except KernelError as exc:
                existing = self.link(name) if exc.errno == errno.EEXIST else None
                if existing is None:
                    raise
                if existing.kind != "veth":
                    raise KernelError(f"{name} exists and is not a veth", errno=errno.EEXIST) from None
                return existing.index
        finally:
            if fd >= 0:
                os.close(fd)
        return self.index(name)

    def bridge_add(self, name: str) -> int:
        check_ifname(name)
        if self.link(name) is None:
            self._call(f"link add {name} type bridge", self._ipr.link, "add", ifname=name, kind="bridge")
        return self.index(name)

    def link_set(
        self,
        name: str,
        *,
        up: bool | None = None,
        master: str | None = None,
        nomaster: bool = False,
        netns: str | None = None,
        rename: str | None = None,
        mac: str | None = None,
        alias: str | None = None,
    ) -> None:
        """`ip link set NAME [up|down] [master BR|nomaster] [netns NS] [name NEW] [address MAC] [alias A]`."""
        index = self.index(name)
        attrs = b""
        if alias is not None:
            attrs += rtnl.attr(rtnl.IFLA_IFALIAS, rtnl.name(alias))
        if rename is not None:
            attrs += rtnl.attr(rtnl.IFLA_IFNAME, rtnl.name(check_ifname(rename)))
        if mac is not None:
            attrs += rtnl.attr(rtnl.IFLA_ADDRESS, rtnl.mac(mac))
        if master is not None or nomaster:
            attrs += rtnl.attr(rtnl.IFLA_MASTER, rtnl.u32(self.index(master) if master is not None else 0))
        if attrs:
            self._rtnl.change(rtnl.RTM_NEWLINK, 0, rtnl.ifinfo(index) + attrs, f"link set {name}")
        if rename is not None or netns is not None:
            self._indexes.pop(name, None)
        if netns is not None:
            fd = os.open(netns_path(netns) or "", os.O_RDONLY | os.O_CLOEXEC)
            try:
                move = rtnl.ifinfo(index) + rtnl.attr(rtnl.IFLA_NET_NS_FD, rtnl.u32(fd))
                self._rtnl.change(rtnl.RTM_NEWLINK, 0, move, f"link set {name} netns")
            finally:
                os.close(fd)
            return
        if up is not None:
            self._rtnl.change(rtnl.RTM_NEWLINK, 0, rtnl.ifinfo(index, flags=rtnl.IFF_UP if up else 0,
                                                               change=rtnl.IFF_UP), f"link set {name}")

    def link_del(self, name: str) -> bool:
        """`ip link del NAME`; False when there was none."""
        found = self._ipr.link_lookup(ifname=check_ifname(name))
        self._indexes.pop(name, None)
        if not found:
            return False
        self._call(f"link del {name}", self._ipr.link, "del", index=found[0], ok=(errno.ENODEV,))
        return True

    # -- addr -------------------------------------------------------------------------
    def addrs(self, name: str) -> list[str]:
        """Addresses on NAME as 'addr/prefixlen'."""
        index = self.index(name)
        out = []
        for msg in self._call("addr show", self._ipr.get_addr, index=index):
            out.append(f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}")
        return out

    def addr_add(self, name: str, cidr: str, *, nodad: bool = False) -> None:
        flags = 0x02 if nodad and ipaddress.ip_interface(cidr).version == 6 else 0  # IFA_F_NODAD
        self._rtnl.change(rtnl.RTM_NEWADDR, rtnl.CREATE, rtnl.ifaddr(self.index(name), cidr, flags=flags),
                          f"addr add {cidr} dev {name}", ok=(errno.EEXIST,))

    def addr_del(self, name: str, cidr: str) -> None:
        iface = ipaddress.ip_interface(cidr)
        found = self._ipr.link_lookup(ifname=check_ifname(name))
        if not found:
            return
        self._call(
            f"addr del {cidr} dev {name}",
            self._ipr.addr,
            "del",
            index=found[0],
            address=str(iface.ip),
            prefixlen=iface.network.prefixlen,
            ok=(errno.EADDRNOTAVAIL, errno.ENODEV),
        )

    # -- route ------------------------------------------------------------------------
    def route_add(self, dst: str, *, dev: str, via: str | None = None, onlink: bool = False) -> None:
        """`ip route replace DST [via GW] dev DEV [onlink]` (replace: an ensure)."""
        if dst == "default" and via is None:
            raise InvalidArgument("a default route needs a gateway")
        self._rtnl.change(rtnl.RTM_NEWROUTE, rtnl.REPLACE, rtnl.rtmsg(self.index(dev), dst, via, onlink=onlink),
                          f"route replace {dst} dev {dev}")

    def route_del(self, dst: str, *, dev: str) -> None:
        found = self._ipr.link_lookup(ifname=check_ifname(dev))
        if not found:
            return
        net = ipaddress.ip_network(dst, strict=False)
        self._call(
            f"route del {dst} dev {dev}",
            self._ipr.route,
            "del",
            dst=str(net),
            oif=found[0],
            family=10 if net.version == 6 else 2,
            ok=(errno.ESRCH, errno.ENOENT),
        )

    def routes(self, dev: str) -> list[str]:
        index = self.index(dev)
        out = []
        for family in (2, 10):
            for msg in self._call("route show", self._ipr.get_routes, family=family, oif=index):
                if msg["table"] != 254 and msg.get_attr("RTA_TABLE") != 254:
                    continue
                dst = msg.get_attr("RTA_DST")
                out.append(f"{dst}/{msg['dst_len']}" if dst else "default")
        return out

    # -- neigh ------------------------------------------------------------------------
    def neigh_add_proxy(self, addr: str, *, dev: str) -> None:
        """`ip neigh add proxy ADDR dev DEV` (answer ARP/NDP for ADDR on DEV)."""
        self._rtnl.change(rtnl.RTM_NEWNEIGH, rtnl.REPLACE, rtnl.ndmsg(self.index(dev), addr, proxy=True),
                          f"neigh add proxy {addr} dev {dev}")

    def neigh_del_proxy(self, addr: str, *, dev: str) -> None:
        found = self._ipr.link_lookup(ifname=check_ifname(dev))
        if not found:
            return
        ip = ipaddress.ip_address(addr)
        self._call(
            f"neigh del proxy {addr} dev {dev}",
            self._ipr.neigh,
            "del",
            dst=str(ip),
            ifindex=found[0],
            family=10 if ip.version == 6 else 2,
            flags=0x08,
            ok=(errno.ENOENT, errno.ESRCH),
        )

    def neigh_add(self, addr: str, lladdr: str, *, dev: str) -> None:
        """`ip neigh replace ADDR lladdr MAC dev DEV nud permanent`."""
        self._rtnl.change(rtnl.RTM_NEWNEIGH, rtnl.REPLACE, rtnl.ndmsg(self.index(dev), addr, lladdr=lladdr),
                          f"neigh replace {addr} dev {dev}")

    def neigh(self, addr: str, *, dev: str) -> str | None:
        """The link-layer address the neighbour table holds for ADDR on DEV (None if none)."""
        ip = ipaddress.ip_address(addr)
        index = self.index(dev)
        for msg in self._call(
            "neigh show", self._ipr.get_neighbours, family=10 if ip.version == 6 else 2, ifindex=index
        ):
            if msg.get_attr("NDA_DST") == str(ip):
                return msg.get_attr("NDA_LLADDR")
        return None
