"""`vzctl set` network flags, OpenVZ's names (docs/network.md, "vzctl"):

    --ipadd ADDR / --ipdel ADDR|all       routed venet0 addresses (IPv4, IPv6, routed IPv6 /64)
    --ifname IF --ipadd/--ipdel ...      the addresses bridged interface IF may use instead
    --netif_add IF[,MAC,HOST_IFNAME,HOST_MAC,BRIDGE] / --netif_del IF|all
    --nameserver ADDR, --searchdomain NAME (repeatable; replace the lists)
    --rate in:100M,out:20M                bits per second as seen from the VPS; K/M/G = 10^3/6/9; 0 = unlimited
    --netdev_add IF / --netdev_del IF     move a host NIC into the VPS and back
    --features tun:on,fuse:off            /dev/net/tun, /dev/fuse
    --devnodes NAME:r|w|rw|none           the host's /dev/NAME (its numbers) at /dev/NAME in the VPS
    --devices c|b:MAJOR:MINOR:PERM        with a --devnodes NAME of the same position: those numbers
                                          at /dev/NAME (alone it is refused: a VPS cannot mknod)

Changes go through `kernel.net.network.Network`: stored, and applied at once when the VPS
runs with the node's network (started by the node worker or supervisor).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import TYPE_CHECKING

from worker.cli import codes
from worker.cli.codes import Fail

if TYPE_CHECKING:
    from kernel.net.config import Netif, Rate, VpsNet
    from kernel.net.devices import Grant
    from kernel.net.network import Network

FLAGS = ("ipadd", "ipdel", "netif_add", "netif_del", "nameserver", "searchdomain", "rate",
         "netdev_add", "netdev_del", "features", "devnodes", "devices")  # fmt: skip
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ipadd", action="append", metavar="ADDR")
    parser.add_argument("--ipdel", action="append", metavar="ADDR|all")
    parser.add_argument("--ifname", metavar="IF", help="--ipadd/--ipdel apply to this bridged interface")
    parser.add_argument("--netif_add", action="append", metavar="IF[,MAC,HOST_IFNAME,HOST_MAC,BRIDGE]")
    parser.add_argument("--netif_del", action="append", metavar="IF|all")
    parser.add_argument("--nameserver", action="append", metavar="ADDR")
    parser.add_argument("--searchdomain", action="append", metavar="NAME")
    parser.add_argument("--rate", metavar="in:BPS,out:BPS")
    parser.add_argument("--netdev_add", action="append", metavar="IF")
    parser.add_argument("--netdev_del", action="append", metavar="IF")
    parser.add_argument("--features", metavar="tun:on|off,fuse:on|off")
    parser.add_argument("--devnodes", action="append", metavar="NAME:r|w|rw|none")
    parser.add_argument("--devices", action="append", metavar="c|b:MAJOR:MINOR:r|w|rw|none")


def given(ns: argparse.Namespace) -> bool:
    return any(getattr(ns, flag) is not None for flag in FLAGS)


def parse_rate(text: str, current: Rate) -> Rate:
    from kernel.net.config import Rate

    values = {"in": current.in_bps, "out": current.out_bps}
    for item in text.split(","):
        key, _, amount = item.strip().partition(":")
        amount = amount.strip().upper()
        unit = amount[-1:] if amount[-1:] in _UNITS else ""
        number = amount[: len(amount) - len(unit)]
        if key not in values or not number.isdigit():
            raise Fail(codes.BAD_SYNTAX, f"Invalid --rate {text!r}: expected in:100M,out:20M")
        values[key] = int(number) * _UNITS[unit]
    return Rate(in_bps=values["in"], out_bps=values["out"])


def parse_netif(text: str) -> Netif:
    """OpenVZ's `ifname[,mac,host_ifname,host_mac,bridge]`; empty fields are generated."""
    from kernel.net.config import Netif

    fields = [f.strip() for f in text.split(",")]
    if len(fields) > 5 or not fields[0]:
        raise Fail(codes.BAD_SYNTAX, f"Invalid --netif_add {text!r}: ifname[,mac,host_ifname,host_mac,bridge]")
    name, mac, host_ifname, host_mac, bridge = (fields + [""] * 5)[:5]
    if not bridge:
        raise Fail(codes.BAD_VALUE, f"--netif_add {name}: name the host bridge (5th field)")
    return Netif(name=name, bridge=bridge, mac=mac, host_ifname=host_ifname, host_mac=host_mac)


def _ips(current: tuple[str, ...], add: list[str], delete: list[str]) -> tuple[str, ...]:
    from kernel.net.config import check_ip

    ips = list(current)
    for addr in delete:
        ips = [] if addr == "all" else [a for a in ips if a != check_ip(addr)]
    for addr in add:
        addr = check_ip(addr)
        if addr not in ips:
            ips.append(addr)
    return tuple(ips)


def wanted(spec: VpsNet, ns: argparse.Namespace) -> VpsNet:
    """The VPS's network after this command's flags (deletions before additions, as OpenVZ)."""
    netifs = list(spec.netifs)
    for name in ns.netif_del or ():
        if name != "all" and name not in [n.name for n in netifs]:
            raise Fail(codes.BAD_VALUE, f"--netif_del: no interface {name!r}")
        netifs = [] if name == "all" else [n for n in netifs if n.name != name]
    for text in ns.netif_add or ():
        netif = parse_netif(text)
        netifs = [n for n in netifs if n.name != netif.name] + [netif]
    spec = replace(spec, netifs=tuple(netifs))
    if ns.ipadd or ns.ipdel:
        if ns.ifname:
            match = [n for n in spec.netifs if n.name == ns.ifname]
            if not match:
                raise Fail(codes.BAD_VALUE, f"--ifname: no bridged interface {ns.ifname!r}")
            netif = replace(match[0], ips=_ips(match[0].ips, ns.ipadd or [], ns.ipdel or []))
            spec = replace(spec, netifs=tuple(netif if n.name == ns.ifname else n for n in spec.netifs))
        else:
            spec = replace(spec, ips=_ips(spec.ips, ns.ipadd or [], ns.ipdel or []))
    if ns.nameserver is not None:
        spec = replace(spec, nameservers=tuple(ns.nameserver))
    if ns.searchdomain is not None:
        spec = replace(spec, searchdomains=tuple(ns.searchdomain))
    if ns.rate is not None:
        spec = replace(spec, rate=parse_rate(ns.rate, spec.rate))
    return spec


def device_changes(ns: argparse.Namespace) -> list[tuple[str, Grant | None]]:
    """(name under /dev, grant or None to revoke) for --features, --devnodes and --devices."""
    from kernel.net.devices import FEATURES, PERMS, Grant, host_device

    out: list[tuple[str, Grant | None]] = []
    for item in (ns.features or "").split(",") if ns.features else ():
        name, _, state = item.strip().partition(":")
        if name not in FEATURES or state not in ("on", "off"):
            raise Fail(codes.BAD_SYNTAX, f"Invalid --features {item!r}: {', '.join(FEATURES)} with :on or :off")
        out.append((FEATURES[name].name, FEATURES[name] if state == "on" else None))
    devnodes, devices = ns.devnodes or [], ns.devices or []
    if len(devices) > len(devnodes):
        raise Fail(codes.BAD_VALUE, "--devices: a VPS cannot create device files in its user namespace; "
                   "name each one with a --devnodes NAME:PERM (the node makes /dev/NAME)")  # fmt: skip
    for index, item in enumerate(devnodes):
        name, _, perm = item.rpartition(":")
        if not name or perm not in PERMS:
            raise Fail(codes.BAD_SYNTAX, f"Invalid --devnodes {item!r}: NAME:r|w|rw|none")
        if perm == "none":
            out.append((name, None))
            continue
        if index < len(devices):
            parts = devices[index].split(":")
            if len(parts) != 4 or parts[0] not in ("c", "b") or not (parts[1].isdigit() and parts[2].isdigit()):
                raise Fail(codes.BAD_SYNTAX, f"Invalid --devices {devices[index]!r}: c|b:MAJOR:MINOR:PERM")
            kind, major, minor = parts[0], int(parts[1]), int(parts[2])
        else:
            kind, major, minor = host_device(name)
        out.append((name, Grant(name=name, kind=kind, major=major, minor=minor, perm=perm)))
    return out


def apply(network: Network, ctid: int, ns: argparse.Namespace) -> dict[str, str]:
    """Apply the flags; the CTID.conf values that describe the result (OpenVZ's keys).
    Everything is checked before anything changes, except what only the kernel can tell."""
    changes = device_changes(ns)
    spec = wanted(network.spec(ctid), ns)
    for grant in (g for _, g in changes if g is not None):
        if not network.devices.allowed(ctid, grant):
            raise Fail(codes.NO_ACCESS, f"Device {grant.device} is not allowed for CT {ctid} on this node "
                       "(CTPANEL_DEVICES_ALLOW)")  # fmt: skip
    network.configure(ctid, spec)
    for name in ns.netdev_del or ():
        network.netdev_del(ctid, name)
    for name in ns.netdev_add or ():
        network.netdev_add(ctid, name)
    for name, grant in changes:
        if grant is None:
            network.revoke_device(ctid, name)
        else:
            network.grant_device(ctid, grant)
    spec = network.spec(ctid)  # with the MACs generated for new interfaces
    netifs = ";".join(
        f"ifname={n.name},mac={n.mac},host_ifname={n.host_ifname},host_mac={n.host_mac},bridge={n.bridge}"
        + (f",ips={' '.join(n.ips)}" if n.ips else "")
        for n in spec.netifs
    )
    return {
        "IP_ADDRESS": " ".join(spec.ips),
        "NETIF": netifs,
        "NAMESERVER": " ".join(spec.nameservers),
        "SEARCHDOMAIN": " ".join(spec.searchdomains),
        "RATE": f"in:{spec.rate.in_bps},out:{spec.rate.out_bps}",
        "NETDEV": " ".join(spec.netdevs),
        "DEVNODES": " ".join(f"{g.name}:{g.perm}" for g in network.devices.grants(ctid)),
        "DEVICES": " ".join(f"{g.device}:{g.perm}" for g in network.devices.grants(ctid)),
    }
