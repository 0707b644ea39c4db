"""`vzctl set` network flags, OpenVZ's names (docs/network.md, "vzctl"):

    --ipadd ADDR / --ipdel ADDR|all       routed venet0 addresses (IPv4, IPv6, routed IPv6 /64)
    --ifname IF --ipadd/--ipdel ...      the addresses bridged interface IF may use instead
    --netif_add IF[,MAC,HOST_IFNAME,HOST_MAC,BRIDGE] / --netif_del IF|all
    --nameserver ADDR, --searchdomain NAME (repeatable; replace the lists)
    --rate in:100M,out:20M                bits per second as seen from the VPS; K/M/G = 10^3/6/9; 0 = unlimited

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
    from kernel.net.network import Network

FLAGS = ("ipadd", "ipdel", "netif_add", "netif_del", "nameserver", "searchdomain", "rate")
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


def apply(network: Network, ctid: int, ns: argparse.Namespace) -> dict[str, str]:
    """Apply the flags; the CTID.conf values that describe the result (OpenVZ's keys)."""
    spec = wanted(network.spec(ctid), ns)
    network.configure(ctid, spec)
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
    }
