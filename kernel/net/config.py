"""Typed inputs of VPS networking: the node's network configuration and one VPS's network."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from kernel.errors import InvalidArgument
from kernel.net.ip import check_ifname
from kernel.vpsfiles import check_hostname, check_value

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_SAFE_IFNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
SMTP_POLICIES = ("allow", "block")
MODES = ("routed", "bridged")
ROUTED_IFNAME = "venet0"


def check_mac(mac: str) -> str:
    mac = mac.lower()
    if not _MAC.match(mac) or int(mac[:2], 16) & 1:
        raise InvalidArgument(f"bad MAC address {mac!r} (unicast aa:bb:cc:dd:ee:ff)")
    return mac


def safe_ifname(name: str) -> str:
    """Interface names we accept from admins: ip(8)'s rules plus nothing nft or a shell would quote."""
    check_ifname(name)
    if not _SAFE_IFNAME.match(name):
        raise InvalidArgument(f"bad interface name {name!r} (letters, digits, '_', '.', '-')")
    return name


def make_mac(ctid: int, index: int | str, *, host: bool = False) -> str:
    """Deterministic locally administered unicast MAC from CTID and interface index.

    Stable across restarts and moves between nodes (the node is not an input).
    """
    digest = hashlib.sha256(f"ctpanel/{ctid}/{index}/{'host' if host else 'vps'}".encode()).digest()
    first = 0x06 if host else 0x02  # locally administered, unicast; host and VPS sides never equal
    return ":".join(f"{b:02x}" for b in (first, *digest[:5]))


def with_macs(ctid: int, spec: VpsNet) -> VpsNet:
    """`spec` with a MAC pair for every bridged interface that has none: `make_mac(ctid, index)` at
    the lowest index no other interface of the VPS uses, stored with it (stable across restarts,
    moves and the removal of other interfaces)."""
    used = {n.mac for n in spec.netifs}
    netifs = []
    for netif in spec.netifs:
        if not netif.mac or not netif.host_mac:
            index = next(i for i in range(1, 10**6) if make_mac(ctid, i) not in used)
            used.add(make_mac(ctid, index))
            mac, host_mac = make_mac(ctid, index), make_mac(ctid, index, host=True)
            netif = replace(netif, mac=netif.mac or mac, host_mac=netif.host_mac or host_mac)
        netifs.append(netif)
    return replace(spec, netifs=tuple(netifs))


def eui64_link_local(mac: str) -> str:
    """The fe80:: address a Linux stack derives from `mac` (addr_gen_mode eui64)."""
    b = [int(x, 16) for x in check_mac(mac).split(":")]
    iid = [b[0] ^ 0x02, b[1], b[2], 0xFF, 0xFE, b[3], b[4], b[5]]
    return str(ipaddress.IPv6Address(bytes([0xFE, 0x80, 0, 0, 0, 0, 0, 0, *iid])))


def check_ip(value: str) -> str:
    """An address a VPS may use: an IPv4 /32, an IPv6 /128 or a routed IPv6 /64 (`ADDR/64`)."""
    check_value(value, "address")
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise InvalidArgument(f"bad address {value!r}") from None
    allowed = (32,) if net.version == 4 else (128, 64)
    if net.prefixlen not in allowed:
        raise InvalidArgument(f"{value}: only IPv4 /32, IPv6 /128 and routed IPv6 /64 are assigned")
    if net.is_multicast or net.is_loopback or net.is_link_local or net.is_unspecified:
        raise InvalidArgument(f"{value} cannot be assigned to a VPS")
    return str(net.network_address) if net.prefixlen in (32, 128) else str(net)


@dataclass(frozen=True)
class Rate:
    """Shaping in bits per second as seen from the VPS; 0 means not limited."""

    in_bps: int = 0  # received by the VPS
    out_bps: int = 0  # sent by the VPS

    def __post_init__(self) -> None:
        for value in (self.in_bps, self.out_bps):
            if not isinstance(value, int) or value < 0 or (0 < value < 8000):
                raise InvalidArgument(f"bad rate {value!r} (0 = unlimited, at least 8000 bit/s)")


@dataclass(frozen=True)
class Netif:
    """A bridged interface (`--netif_add name[,mac,host_ifname,host_mac,bridge]`)."""

    name: str
    bridge: str
    mac: str = ""
    host_ifname: str = ""
    host_mac: str = ""
    ips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        safe_ifname(self.name)
        safe_ifname(self.bridge)
        if self.name == ROUTED_IFNAME:
            raise InvalidArgument(f"{ROUTED_IFNAME} is the routed interface")
        if self.host_ifname:
            safe_ifname(self.host_ifname)
        for mac in (self.mac, self.host_mac):
            if mac:
                check_mac(mac)
        object.__setattr__(self, "ips", tuple(check_ip(a) for a in self.ips))


@dataclass(frozen=True)
class VpsNet:
    """Everything a node needs to build one VPS's network; the panel sends it whole."""

    ips: tuple[str, ...] = ()  # routed addresses on venet0
    netifs: tuple[Netif, ...] = ()
    rate: Rate = field(default_factory=Rate)
    conntrack_max: int | None = None  # None: the node's default; 0: no cap
    packet_rate: int = 0  # packets per second the VPS may send; 0: no limit
    smtp: str = ""  # "" : the node's default
    nameservers: tuple[str, ...] = ()
    searchdomains: tuple[str, ...] = ()
    netdevs: tuple[str, ...] = ()  # host NICs moved into the VPS (`--netdev_add`)

    def __post_init__(self) -> None:
        for name in self.netdevs:
            safe_ifname(name)
        ips = tuple(check_ip(a) for a in self.ips)
        if len(set(ips)) != len(ips):
            raise InvalidArgument("an address is listed twice")
        object.__setattr__(self, "ips", ips)
        names = [n.name for n in self.netifs]
        if len(set(names)) != len(names):
            raise InvalidArgument("an interface name is listed twice")
        if self.smtp not in ("", *SMTP_POLICIES):
            raise InvalidArgument(f"bad SMTP policy {self.smtp!r}")
        if self.conntrack_max is not None and self.conntrack_max < 0:
            raise InvalidArgument("conntrack_max must be >= 0")
        if self.packet_rate < 0:
            raise InvalidArgument("packet_rate must be >= 0")
        for server in self.nameservers:
            check_value(server, "nameserver")
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise InvalidArgument(f"bad nameserver {server!r}") from None
        for domain in self.searchdomains:
            check_hostname(domain)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VpsNet:
        return cls(
            ips=tuple(data.get("ips", ())),
            netifs=tuple(Netif(**{**n, "ips": tuple(n.get("ips", ()))}) for n in data.get("netifs", ())),
            rate=Rate(**data.get("rate", {})),
            conntrack_max=data.get("conntrack_max"),
            packet_rate=data.get("packet_rate", 0),
            smtp=data.get("smtp", ""),
            nameservers=tuple(data.get("nameservers", ())),
            searchdomains=tuple(data.get("searchdomains", ())),
            netdevs=tuple(data.get("netdevs", ())),
        )


@dataclass(frozen=True)
class NetConfig:
    """The host side of VPS networking on one node.

    `host_netns` is where veths, routes, proxy entries, tc and nft tables live: None is the
    worker's own namespace (production), a name or path is a namespace a test made. With no
    `uplink`, VPS traffic never leaves the node: VPSs reach each other and opened host services.
    """

    host_netns: str | None = None
    uplink: str | None = None
    proxy_neighbours: bool = True  # answer ARP/NDP for VPS addresses on the uplink
    open_tcp: tuple[int, ...] = ()  # host services VPSs may reach (ports on the node's own addresses)
    open_udp: tuple[int, ...] = ()
    smtp_default: str = "allow"
    conntrack_max: int = 0  # default per-VPS conntrack cap (0: none)
    gateway4: str = "169.254.0.1"
    gateway6: str = "fe80::1"
    device_allow: tuple[str, ...] = ()  # admin-chosen device nodes per VPS: "CTID:c|b:MAJOR:MINOR" (devices.py)

    def __post_init__(self) -> None:
        if self.uplink is not None:
            safe_ifname(self.uplink)
        if self.smtp_default not in SMTP_POLICIES:
            raise InvalidArgument(f"bad SMTP policy {self.smtp_default!r}")
        for port in (*self.open_tcp, *self.open_udp):
            if not isinstance(port, int) or not 0 < port < 65536:
                raise InvalidArgument(f"bad port {port!r}")
        if not ipaddress.ip_address(self.gateway4).is_link_local:
            raise InvalidArgument("gateway4 must be link-local (169.254.0.0/16)")
        if not ipaddress.ip_address(self.gateway6).is_link_local:
            raise InvalidArgument("gateway6 must be link-local (fe80::/10)")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
