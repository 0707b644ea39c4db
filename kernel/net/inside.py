"""Network configuration files inside a VPS, written through the safe-write module.

The host configures a routed VPS's addresses itself at start; these files let
the VPS's own tools (ifup, networkd) bring the same configuration back after
the customer took an interface down. Every value is validated before it is
written (addresses parsed, no newlines; search domains per RFC 1123).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from kernel import vpsfiles
from kernel.config import NodeConfig
from kernel.errors import NotFound
from kernel.net.config import ROUTED_IFNAME
from kernel.templates import TemplateCache

STYLES = ("busybox", "debian", "networkd", "none")
NETWORKD_FILE = f"/etc/systemd/network/50-ctpanel-{ROUTED_IFNAME}.network"
IFUP_HOOK_DIRS = ("if-pre-up.d", "if-up.d", "if-down.d", "if-post-down.d")


@dataclass(frozen=True)
class InsideConfig:
    style: str
    ips: tuple[str, ...]
    gateway4: str
    gateway6: str
    nameservers: tuple[str, ...] = ()
    searchdomains: tuple[str, ...] = ()


def style_of(node: NodeConfig, template: str) -> str:
    """The template's `network_config` (busybox, debian, networkd; unknown → none)."""
    try:
        style = TemplateCache(node).get(template).meta.network_config
    except NotFound:
        return "none"
    return style if style in STYLES else "none"


def _hosts(ips: tuple[str, ...]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    out = []
    for addr in ips:
        net = ipaddress.ip_network(addr)
        if net.prefixlen == net.max_prefixlen:
            out.append(net.network_address)
    return out


def render_interfaces(cfg: InsideConfig) -> str:
    """/etc/network/interfaces for ifupdown and busybox ifup (idempotent `replace` commands).

    IPv6 addresses skip duplicate address detection (nothing else on the veth can hold them):
    iproute2's `nodad` for Debian; busybox's `ip` has no `nodad`, so there DAD is switched off
    on the interface first (the VPS's /proc/sys/net is its own and writable).
    """
    addrs = _hosts(cfg.ips)
    busybox = cfg.style == "busybox"
    lines = ["# written by ctpanel: routed interface", "auto lo", "iface lo inet loopback", ""]
    lines += [f"auto {ROUTED_IFNAME}", f"iface {ROUTED_IFNAME} inet manual", f"    up ip link set {ROUTED_IFNAME} up"]
    if busybox and any(a.version == 6 for a in addrs):
        lines.append(f"    up sysctl -w net.ipv6.conf.{ROUTED_IFNAME}.accept_dad=0 >/dev/null")
    for a in addrs:
        bits = a.max_prefixlen
        nodad = " nodad" if a.version == 6 and not busybox else ""
        lines.append(f"    up ip addr replace {a}/{bits} dev {ROUTED_IFNAME}{nodad}")
    if any(a.version == 4 for a in addrs):
        lines.append(f"    up ip route replace {cfg.gateway4} dev {ROUTED_IFNAME} scope link")
        lines.append(f"    up ip route replace default via {cfg.gateway4} dev {ROUTED_IFNAME}")
    if any(ipaddress.ip_network(a).version == 6 for a in cfg.ips):
        lines.append(f"    up ip -6 route replace default via {cfg.gateway6} dev {ROUTED_IFNAME}")
    return "\n".join(lines) + "\n"


def render_networkd(cfg: InsideConfig) -> str:
    lines = ["# written by ctpanel: routed interface", "[Match]", f"Name={ROUTED_IFNAME}", "", "[Network]"]
    lines += [f"Address={a}/{a.max_prefixlen}" for a in _hosts(cfg.ips)]
    lines += [f"DNS={vpsfiles.check_value(s, 'nameserver')}" for s in cfg.nameservers]
    if cfg.searchdomains:
        lines.append("Domains=" + " ".join(vpsfiles.check_hostname(d) for d in cfg.searchdomains))
    lines += ["", "[Route]", f"Gateway={cfg.gateway4}", "GatewayOnLink=yes", "", "[Route]", f"Gateway={cfg.gateway6}"]
    return "\n".join(lines) + "\n"


def write(volume: str, cfg: InsideConfig) -> None:
    """Write the files for `cfg.style` into the VPS volume at `volume` (never following its links);
    a file that already says the same, root's and 0644, is left alone (each start writes them)."""
    with vpsfiles.VpsRoot(volume) as root:
        if cfg.nameservers or cfg.searchdomains:
            root.ensure("/etc/resolv.conf", vpsfiles.render_resolv_conf(cfg.nameservers, cfg.searchdomains))
        if cfg.style in ("busybox", "debian"):
            root.makedirs("/etc/network")
            root.ensure("/etc/network/interfaces", render_interfaces(cfg))
            if cfg.style == "busybox":  # busybox ifup fails without its run-parts and state directories
                for path in (*(f"/etc/network/{hook}" for hook in IFUP_HOOK_DIRS), "/var/run"):
                    root.makedirs(path)
        elif cfg.style == "networkd":
            root.makedirs("/etc/systemd/network")
            root.ensure(NETWORKD_FILE, render_networkd(cfg))

