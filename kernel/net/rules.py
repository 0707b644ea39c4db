"""The nft rules of VPS networking, as nft(8) batches (text in, `nft -j` out).

Layout in the host network namespace (`P` is the node's table prefix, see `table_prefix`):

* `table inet P` — one per node: host protection (`input`), off-node policy (`forward`)
  and the per-VPS conntrack cap (`prerouting`), each a verdict map from the host
  veth's name to that VPS's own chains `v<CTID>_pre|_in|_fwd`.
* `table netdev P_<CTID>` — one per VPS: a chain per host-side veth on the ingress hook
  (everything the VPS sends: anti-spoofing, packet rate, the "out" shaper and counter)
  and one on its egress hook (the "in" counter). Deleting this table removes all of it.

Every drop has a named counter, so tests and admins can see which rule hit.
Values are validated before they reach a batch (interface names, addresses, MACs).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from kernel.net.config import check_mac, eui64_link_local

ETH_HLEN = 14

#: Counter suffixes of the per-interface chain, in rule order.
SPOOF_COUNTERS = ("bad_mac", "bad_type", "bad_arp", "ra", "bad_nd", "bad_ip4", "bad_ip6", "pps", "shaped",
                  "shaped_in")


def table_prefix(node: str) -> str:
    """An nft identifier unique to the node: `ctp_<node>`, plus a hash when the name had to change."""
    clean = re.sub(r"[^A-Za-z0-9]", "_", node)
    if clean != node:
        clean += "_" + hashlib.sha256(node.encode()).hexdigest()[:6]
    return f"ctp_{clean}"


@dataclass(frozen=True)
class DevicePolicy:
    """What one VPS interface may send, as seen on its host-side veth."""

    inside: str  # the VPS's name for it: venet0, eth0 (letters and digits only)
    host: str
    mac: str
    ips: tuple[str, ...]
    packet_rate: int = 0
    out_bps: int = 0
    in_bps: int = 0
    mark: int = 0  # bridged: set on what passed, so the node table finds the VPS (see `vps_chains`)

    def ip4(self) -> list[str]:
        return [a for a in self.ips if ":" not in a]

    def ip6(self) -> list[str]:
        return [a for a in self.ips if ":" in a] + [eui64_link_local(self.mac), "::"]


def _elements(values: Iterable[str]) -> str:
    return "{ " + ", ".join(values) + " }"


def vps_table(table: str, devices: Iterable[DevicePolicy], *, replace: bool = True) -> str:
    """The whole per-VPS netdev table (delete + create in one batch: an ensure). `replace=False`
    only creates it, for a caller that knows it absent: the delete cost each nft run ~10 ms more."""
    lines = [f"table netdev {table} {{}}", f"delete table netdev {table}"] if replace else []
    lines.append(f"table netdev {table} {{")
    for d in devices:
        n = d.inside
        mac = check_mac(d.mac)
        for suffix in (*SPOOF_COUNTERS, "in", "out"):
            lines.append(f"  counter {n}_{suffix} {{}}")
        lines.append(f"  set {n}_ip4 {{ type ipv4_addr; flags interval; }}")
        lines.append(f"  set {n}_ip6 {{ type ipv6_addr; flags interval; }}")
        lines.append(f"  set {n}_nd {{ typeof @th,64,128; flags interval; }}")
        lines.append(f"  chain {n}_out {{")
        lines.append(f'    type filter hook ingress device "{d.host}" priority -500; policy accept;')
        lines.append(f'    ether saddr != {mac} counter name "{n}_bad_mac" drop')
        lines.append(f'    ether type != {{ arp, ip, ip6 }} counter name "{n}_bad_type" drop')
        lines.append(f'    arp saddr ether != {mac} counter name "{n}_bad_arp" drop')
        lines.append(f'    arp saddr ip != @{n}_ip4 arp saddr ip != 0.0.0.0 counter name "{n}_bad_arp" drop')
        lines.append(f'    icmpv6 type nd-router-advert counter name "{n}_ra" drop')
        lines.append(f'    icmpv6 type nd-neighbor-advert @th,64,128 != @{n}_nd counter name "{n}_bad_nd" drop')
        lines.append(f'    ip saddr != @{n}_ip4 counter name "{n}_bad_ip4" drop')
        lines.append(f'    ip6 saddr != @{n}_ip6 counter name "{n}_bad_ip6" drop')
        if d.packet_rate:
            lines.append(f'    limit rate over {int(d.packet_rate)}/second counter name "{n}_pps" drop')
        if d.out_bps:
            lines.append(f'    {_limit(d.out_bps)} counter name "{n}_shaped" drop')
        if d.mark:
            lines.append(f"    meta mark set {int(d.mark):#x}")
        lines.append(f'    counter name "{n}_out"')
        lines.append("  }")
        lines.append(f"  chain {n}_in {{")
        lines.append(f'    type filter hook egress device "{d.host}" priority 500; policy accept;')
        if d.in_bps:  # policed before the counter: what is dropped is not counted (nor billed)
            lines.append(f'    {_limit(d.in_bps)} counter name "{n}_shaped_in" drop')
        lines.append(f'    counter name "{n}_in"')
        lines.append("  }")
    lines.append("}")
    for d in devices:
        lines.extend(set_elements(table, d))
    return "\n".join(lines) + "\n"


def set_elements(table: str, d: DevicePolicy) -> list[str]:
    out = []
    if d.ip4():
        out.append(f"add element netdev {table} {d.inside}_ip4 {_elements(d.ip4())}")
    out.append(f"add element netdev {table} {d.inside}_ip6 {_elements(d.ip6())}")
    out.append(f"add element netdev {table} {d.inside}_nd {_elements(_raw6(a) for a in d.ip6())}")
    return out


def _raw6(addr: str) -> str:
    """An IPv6 address or prefix as the integer (range) a raw-payload set holds (the ND target)."""
    net = ipaddress.IPv6Network(addr)
    low, high = int(net.network_address), int(net.broadcast_address)
    return hex(low) if low == high else f"{hex(low)}-{hex(high)}"


def _limit(bps: int) -> str:
    """A policer for `bps` bits per second: bytes/s with a burst of 50 ms (at least 16 KiB)."""
    rate = max(1, bps // 8)
    burst = max(rate // 20, 16384)
    return f"limit rate over {rate} bytes/second burst {burst} bytes"


def node_table(table: str, *, open_tcp: Iterable[int], open_udp: Iterable[int]) -> str:
    """Ensure the node's inet table and its base chains; per-VPS chains and map entries are kept."""
    tcp = [str(int(p)) for p in open_tcp]
    udp = [str(int(p)) for p in open_udp]
    lines = [
        f"add table inet {table}",
        f"add set inet {table} vps_ifaces {{ type ifname; }}",
        f"add set inet {table} open_tcp {{ type inet_service; }}",
        f"add set inet {table} open_udp {{ type inet_service; }}",
        f"add map inet {table} vps_pre {{ type ifname : verdict; }}",
        f"add map inet {table} vps_in {{ type ifname : verdict; }}",
        f"add map inet {table} vps_fwd {{ type ifname : verdict; }}",
        f"add map inet {table} vps_mark_pre {{ type mark : verdict; }}",
        f"add map inet {table} vps_mark_in {{ type mark : verdict; }}",
        f"add chain inet {table} prerouting {{ type filter hook prerouting priority -150; policy accept; }}",
        f"add chain inet {table} input {{ type filter hook input priority -10; policy accept; }}",
        f"add chain inet {table} forward {{ type filter hook forward priority -10; policy accept; }}",
        f"add chain inet {table} guard",
    ]
    for chain in ("prerouting", "input", "forward", "guard"):
        lines.append(f"flush chain inet {table} {chain}")
    lines += [
        f"flush set inet {table} open_tcp",
        f"flush set inet {table} open_udp",
        f"add rule inet {table} prerouting iifname vmap @vps_pre",
        f"add rule inet {table} prerouting meta mark vmap @vps_mark_pre",
        f"add rule inet {table} input iifname vmap @vps_in",
        f"add rule inet {table} input meta mark vmap @vps_mark_in",
        f"add rule inet {table} forward iifname vmap @vps_fwd",
        # What a VPS may send to the node itself: replies, neighbour discovery, ping, opened services.
        f"add rule inet {table} guard ct state established,related accept",
        f"add rule inet {table} guard icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, echo-request }} accept",
        f"add rule inet {table} guard icmp type echo-request accept",
        f"add rule inet {table} guard tcp dport @open_tcp accept",
        f"add rule inet {table} guard udp dport @open_udp accept",
    ]
    if tcp:
        lines.append(f"add element inet {table} open_tcp {_elements(tcp)}")
    if udp:
        lines.append(f"add element inet {table} open_udp {_elements(udp)}")
    return "\n".join(lines) + "\n"


def vps_chains(
    table: str,
    ctid: int,
    hosts: Iterable[str],
    *,
    uplink: str | None,
    conntrack_max: int,
    smtp_block: bool,
    bridged: bool = False,
) -> str:
    """Ensure VPS `ctid`'s chains in the node table and map its host veths to them.

    Bridged traffic reaches the inet hooks only through br_netfilter, with the bridge as its
    input interface: there the VPS is found by the mark its netdev chain set (the CTID).
    """
    v = f"v{int(ctid)}"
    lines = []
    for chain in ("pre", "in", "fwd"):
        lines += [f"add chain inet {table} {v}_{chain}", f"flush chain inet {table} {v}_{chain}"]
    for name in ("ct", "host", "offnode", "smtp"):
        lines.append(f"add counter inet {table} {v}_{name}")
    if conntrack_max:
        lines.append(
            f'add rule inet {table} {v}_pre ct state new ct count over {int(conntrack_max)} counter name "{v}_ct" drop'
        )
    lines += [
        f"add rule inet {table} {v}_in jump guard",
        f'add rule inet {table} {v}_in counter name "{v}_host" drop',
    ]
    if smtp_block:
        lines.append(f'add rule inet {table} {v}_fwd tcp dport 25 counter name "{v}_smtp" drop')
    lines.append(f"add rule inet {table} {v}_fwd oifname @vps_ifaces accept")
    if uplink:
        lines.append(f'add rule inet {table} {v}_fwd oifname "{uplink}" accept')
    lines.append(f'add rule inet {table} {v}_fwd counter name "{v}_offnode" drop')
    for host in hosts:
        lines.append(f'add element inet {table} vps_ifaces {{ "{host}" }}')
        for chain, vmap in (("pre", "vps_pre"), ("in", "vps_in"), ("fwd", "vps_fwd")):
            lines.append(f'add element inet {table} {vmap} {{ "{host}" : jump {v}_{chain} }}')
    for chain, vmap in (("pre", "vps_mark_pre"), ("in", "vps_mark_in")):
        lines.append(f"add element inet {table} {vmap} {{ {int(ctid):#x} : jump {v}_{chain} }}")
        if not bridged:  # added then deleted: absent afterwards whatever was there
            lines.append(f"delete element inet {table} {vmap} {{ {int(ctid):#x} }}")
    return "\n".join(lines) + "\n"


def release_vps(table: str, vps_table: str, ctid: int, hosts: Iterable[str]) -> str:
    """Remove VPS `ctid`'s netdev table and its chains, counters and map entries in the node table,
    whichever of them exist, in one batch: each is added first (a no-op when it is there) and then
    deleted, so nothing has to be listed first (each nft run reads the whole ruleset)."""
    v = f"v{int(ctid)}"
    chains = [f"{v}_{chain}" for chain in ("pre", "in", "fwd")]
    counters = [f"{v}_{name}" for name in ("ct", "host", "offnode", "smtp")]
    elements = []
    for host in hosts:
        elements.append(("vps_ifaces", f'"{host}"', ""))
        for chain, vmap in (("pre", "vps_pre"), ("in", "vps_in"), ("fwd", "vps_fwd")):
            elements.append((vmap, f'"{host}"', f" : jump {v}_{chain}"))
    for chain, vmap in (("pre", "vps_mark_pre"), ("in", "vps_mark_in")):
        elements.append((vmap, f"{int(ctid):#x}", f" : jump {v}_{chain}"))
    lines = [f"table netdev {vps_table} {{}}", f"delete table netdev {vps_table}"]
    lines += [f"add chain inet {table} {name}" for name in chains]
    lines += [f"add counter inet {table} {name}" for name in counters]
    lines += [f"add element inet {table} {vmap} {{ {key}{data} }}" for vmap, key, data in elements]
    lines += [f"delete element inet {table} {vmap} {{ {key} }}" for vmap, key, _ in elements]
    for name in chains:
        lines += [f"flush chain inet {table} {name}", f"delete chain inet {table} {name}"]
    lines += [f"delete counter inet {table} {name}" for name in counters]
    return "\n".join(lines) + "\n"


def remove_vps_chains(table: str, ctid: int, hosts: Iterable[str], present: set[str]) -> str:
    """Delete VPS `ctid`'s map entries, chains and counters (only what `present` lists exists)."""
    v = f"v{int(ctid)}"
    lines = []
    for host in hosts:
        for vmap in ("vps_pre", "vps_in", "vps_fwd", "vps_ifaces"):
            if f"{vmap}:{host}" in present:
                lines.append(f'delete element inet {table} {vmap} {{ "{host}" }}')
    for vmap in ("vps_mark_pre", "vps_mark_in"):
        if f"{vmap}:{int(ctid)}" in present:
            lines.append(f"delete element inet {table} {vmap} {{ {int(ctid):#x} }}")
    for chain in ("pre", "in", "fwd"):
        if f"chain:{v}_{chain}" in present:
            lines += [f"flush chain inet {table} {v}_{chain}", f"delete chain inet {table} {v}_{chain}"]
    for name in ("ct", "host", "offnode", "smtp"):
        if f"counter:{v}_{name}" in present:
            lines.append(f"delete counter inet {table} {v}_{name}")
    return "\n".join(lines) + "\n" if lines else ""


def ip_element(table: str, inside: str, addr: str, *, add: bool) -> str:
    net = ipaddress.ip_network(addr)
    verb = "add" if add else "delete"
    value = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
    if net.version == 4:
        return f"{verb} element netdev {table} {inside}_ip4 {{ {value} }}\n"
    return (
        f"{verb} element netdev {table} {inside}_ip6 {{ {value} }}\n"
        f"{verb} element netdev {table} {inside}_nd {{ {_raw6(value)} }}\n"
    )
