"""VPS networking on one node: the start hook, live changes, clean-up and traffic counters.

`Network(node, net)` is cheap to construct and keeps no per-VPS state in memory.
Desired state per VPS lives in `<state_root>/net/<CTID>.json` (what `configure`
stored), what is built for a running VPS in `<state_root>/net/<CTID>.live.json`,
and the host-side interface names in the registry record (`Record.interfaces`,
`{"venet0": "ve1a2b…"}`): names are allocated once, never derived from the CTID
by string-mangling, so two nodes on one machine cannot collide.

Callers hold the runtime's per-VPS lock around every change (`Runtime.lock`).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from kernel import statefile
from kernel.config import NodeConfig, check_ctid
from kernel.errors import AlreadyExists, CommandFailed, InvalidArgument, NotFound
from kernel.net import inside, nfobjects, rules
from kernel.net.config import (
    ROUTED_IFNAME,
    NetConfig,
    Netif,
    Rate,
    VpsNet,
    check_ip,
    make_mac,
    safe_ifname,
    with_macs,
)
from kernel.net.devices import Devices, Grant, parse_allow
from kernel.net.ip import IP, set_sysctl
from kernel.net.nft import Counter, Nft, lock_path
from kernel.registry import Record, Registry

NODE_FILE = "node.json"  # the NetConfig of the node's last setup_node
ALIAS_PREFIX = "ctpanel:"  # a host veth's alias: ctpanel:<node>:<CTID>:<inside name> (see `owner_alias`)


@dataclass(frozen=True)
class Traffic:
    """Bytes (Ethernet frames without FCS) and packets as seen from the VPS; `in` = received by it."""

    in_bytes: int = 0
    in_packets: int = 0
    out_bytes: int = 0
    out_packets: int = 0

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(*(a + b for a, b in zip(self.as_list(), other.as_list(), strict=True)))

    def as_list(self) -> list[int]:
        return [self.in_bytes, self.in_packets, self.out_bytes, self.out_packets]


@dataclass(frozen=True)
class TrafficReport:
    epoch: str  # changes only when the node's running totals were lost: then totals restart at 0
    vps: dict[int, Traffic]


def _starttime(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return int(fh.read().rpartition(")")[2].split()[19])
    except (OSError, IndexError, ValueError):
        return None


class Network:
    def __init__(self, node: NodeConfig, net: NetConfig | None = None) -> None:
        self.node = node
        self.net = net or NetConfig()
        self.prefix = rules.table_prefix(node.node)
        self.registry = Registry(node)
        self.dir = statefile.ensure_dir(node.path("net"))
        # machine-wide: nodes on one machine may share a host namespace (tests do)
        self.nft = Nft(self.net.host_netns, lock=lock_path(os.path.dirname(node.idmap_registry), self.net.host_netns))
        self.devices = Devices(node, parse_allow(" ".join(self.net.device_allow)))

    # -- node ------------------------------------------------------------------------------
    @classmethod
    def saved_config(cls, node: NodeConfig) -> NetConfig | None:
        """The configuration the node's last `setup_node` ran with (for vzctl on the node)."""
        try:
            return NetConfig.from_json(statefile.read_json(node.path("net", NODE_FILE)))
        except NotFound:
            return None

    def setup_node(self) -> None:
        """Ensure forwarding, proxy NDP on the uplink and the node's nft table (idempotent); save
        the configuration, so that vzctl on this node uses the same host side (`saved_config`)."""
        self._sysctl("net.ipv4.ip_forward", "1")
        self._sysctl("net.ipv6.conf.all.forwarding", "1")
        if self.net.uplink and self.net.proxy_neighbours:
            self._sysctl(f"net.ipv6.conf.{self.net.uplink}.proxy_ndp", "1")
        self.nft.batch(rules.node_table(self.prefix, open_tcp=self.net.open_tcp, open_udp=self.net.open_udp))
        statefile.write_json(os.path.join(self.dir, NODE_FILE), self.net.to_json())

    def teardown_node(self) -> None:
        """Remove the node's nft table (every VPS must have been released first)."""
        self.nft.delete_table("inet", self.prefix)

    def _sysctl(self, key: str, value: str) -> None:
        set_sysctl(self.net.host_netns, key, value)

    # -- desired state -----------------------------------------------------------------------
    def _spec_path(self, ctid: int) -> str:
        return os.path.join(self.dir, f"{check_ctid(ctid)}.json")

    def _live_path(self, ctid: int) -> str:
        return os.path.join(self.dir, f"{check_ctid(ctid)}.live.json")

    def spec(self, ctid: int) -> VpsNet:
        try:
            return VpsNet.from_json(statefile.read_json(self._spec_path(ctid)))
        except NotFound:
            return VpsNet()

    def configure(self, ctid: int, spec: VpsNet) -> None:
        """Store the VPS's desired network and apply what can change live (addresses, rate)."""
        old = self.spec(ctid)
        spec = with_macs(ctid, spec)
        self._check_unique(ctid, spec)
        self._check_bridges(spec)
        statefile.write_json(self._spec_path(ctid), spec.to_json())
        live = self._live(ctid)
        if live is None:
            return
        if old.netifs != spec.netifs:
            live = self._sync_netifs(ctid, live, old, spec)
        for addr in [a for a in old.ips if a not in spec.ips]:
            self._route_ip(ctid, live, addr, add=False)
        for addr in [a for a in spec.ips if a not in old.ips]:
            self._route_ip(ctid, live, addr, add=True)
        if (old.rate, old.packet_rate, old.netifs) != (spec.rate, spec.packet_rate, spec.netifs):
            self._apply_vps_table(ctid, spec, live["hosts"])
        if (old.smtp, old.conntrack_max) != (spec.smtp, spec.conntrack_max):
            self._apply_vps_chains(ctid, spec, live["hosts"])
        self._write_inside(ctid, spec)

    def add_ip(self, ctid: int, addr: str) -> VpsNet:
        """`vzctl set CTID --ipadd ADDR`: live when running."""
        addr = check_ip(addr)
        spec = self.spec(ctid)
        if addr not in spec.ips:
            spec = replace(spec, ips=(*spec.ips, addr))
            self.configure(ctid, spec)
        return spec

    def del_ip(self, ctid: int, addr: str) -> VpsNet:
        """`vzctl set CTID --ipdel ADDR|all`: traffic from and to it stops at once."""
        spec = self.spec(ctid)
        keep = () if addr == "all" else tuple(a for a in spec.ips if a != check_ip(addr))
        if keep != spec.ips:
            spec = replace(spec, ips=keep)
            self.configure(ctid, spec)
        return spec

    def netif_add(self, ctid: int, netif: Netif) -> VpsNet:
        """`vzctl set CTID --netif_add`: a bridged interface; live when running (replaces one of that name)."""
        spec = self.spec(ctid)
        spec = replace(spec, netifs=(*(n for n in spec.netifs if n.name != netif.name), netif))
        self.configure(ctid, spec)
        return self.spec(ctid)

    def netif_del(self, ctid: int, name: str) -> VpsNet:
        """`vzctl set CTID --netif_del NAME|all`: the interface leaves the running VPS at once."""
        spec = self.spec(ctid)
        keep = () if name == "all" else tuple(n for n in spec.netifs if n.name != name)
        if name != "all" and len(keep) == len(spec.netifs):
            raise NotFound(f"CT {ctid} has no interface {name!r}")
        self.configure(ctid, replace(spec, netifs=keep))
        return self.spec(ctid)

    def netdev_add(self, ctid: int, name: str) -> VpsNet:
        """`vzctl set CTID --netdev_add IF`: move host NIC IF into the VPS (now if running, else at start).

        It comes back on `netdev_del`; when the VPS stops, the kernel returns a physical NIC to
        the initial namespace (a virtual one, a veth end, is destroyed with the VPS's namespace).
        """
        name = safe_ifname(name)
        veths = {n for c in self.registry.ctids() for n in (self.registry.get(c).interfaces.values())}
        if name in ("lo", self.net.uplink) or name in veths:
            raise InvalidArgument(f"{name} is not a NIC that can be given to a VPS")
        for other in self._stored_ctids():
            if other != ctid and name in self.spec(other).netdevs:
                raise AlreadyExists(f"{name} is given to CT {other}")
        spec = self.spec(ctid)
        if name in spec.netdevs:
            return spec
        live = self._live(ctid)
        if live is not None:
            self._move_netdev(name, f"/proc/{live['pid']}/ns/net", into=True)
        spec = replace(spec, netdevs=(*spec.netdevs, name))
        statefile.write_json(self._spec_path(ctid), spec.to_json())
        return spec

    def netdev_del(self, ctid: int, name: str) -> VpsNet:
        """`vzctl set CTID --netdev_del IF`: back into the node's namespace at once."""
        spec = self.spec(ctid)
        if name not in spec.netdevs:
            raise NotFound(f"CT {ctid} was not given {name!r}")
        live = self._live(ctid)
        if live is not None:
            self._move_netdev(name, f"/proc/{live['pid']}/ns/net", into=False)
        spec = replace(spec, netdevs=tuple(n for n in spec.netdevs if n != name))
        statefile.write_json(self._spec_path(ctid), spec.to_json())
        return spec

    def _move_netdev(self, name: str, vps_ns: str, *, into: bool) -> None:
        source, target = (self.net.host_netns, vps_ns) if into else (vps_ns, self.net.host_netns or "/proc/self/ns/net")
        with IP(source) as ip:
            if ip.link(name) is None:
                where = "the VPS" if not into else "this node"
                raise NotFound(f"no interface {name!r} in {where}")
            ip.link_set(name, netns=target)

    def grant_device(self, ctid: int, grant: Grant) -> None:
        """`--devnodes` / `--features tun,fuse`: the node in the VPS's /dev, at once if running."""
        live = self._live(ctid)
        self.devices.grant(ctid, grant, init_pid=live["pid"] if live else None)

    def revoke_device(self, ctid: int, name: str) -> bool:
        """`--devnodes NAME:none` / `--features tun:off`: gone from a running VPS's /dev at once."""
        live = self._live(ctid)
        return self.devices.revoke(ctid, name, init_pid=live["pid"] if live else None)

    def set_rate(self, ctid: int, rate: Rate) -> VpsNet:
        spec = replace(self.spec(ctid), rate=rate)
        self.configure(ctid, spec)
        return spec

    def forget(self, ctid: int) -> None:
        """On destroy: release everything and drop the stored desired state and totals."""
        self.release(ctid)
        self.devices.forget(ctid)
        statefile.remove(self._spec_path(ctid))
        with self._totals() as totals:
            totals["vps"].pop(str(ctid), None)

    def _stored_ctids(self) -> list[int]:
        """The VPSs with a stored network (`<CTID>.json`)."""
        out = []
        for name in os.listdir(self.dir):
            stem, _, ext = name.partition(".")
            if ext == "json" and stem.isdigit():
                out.append(int(stem))
        return out

    def _check_unique(self, ctid: int, spec: VpsNet) -> None:
        mine = {ipaddress.ip_network(a) for a in _all_ips(spec)}
        for stem in self._stored_ctids():
            if stem == ctid:
                continue
            other = self.spec(stem)
            for addr in _all_ips(other):
                net = ipaddress.ip_network(addr)
                if any(net.version == m.version and net.overlaps(m) for m in mine):  # type: ignore[arg-type]
                    raise AlreadyExists(f"{addr} is assigned to CT {stem}")

    def _check_bridges(self, spec: VpsNet) -> None:
        with IP(self.net.host_netns) as host:
            for netif in spec.netifs:
                link = host.link(netif.bridge)
                if link is None or link.kind != "bridge":
                    raise InvalidArgument(f"{netif.name}: no bridge {netif.bridge!r} on this node")

    # -- names --------------------------------------------------------------------------------
    def _host_names(self, record: Record, spec: VpsNet, host: IP | None = None) -> tuple[Record, dict[str, str]]:
        """Inside name -> host-side veth name, allocated once and kept in the registry (`host`: an
        open socket in the host namespace to reuse)."""
        names = dict(record.interfaces)
        wanted = [ROUTED_IFNAME, *(n.name for n in spec.netifs)]
        given = {n.name: n.host_ifname for n in spec.netifs if n.host_ifname}
        taken: set[str] | None = None  # the host's links: read only when a name has to be chosen
        for inside_name in wanted:
            if inside_name in given:
                if names.get(inside_name) != given[inside_name]:
                    taken = self._taken_names(record.ctid, host) if taken is None else taken
                    if given[inside_name] in taken:
                        raise AlreadyExists(f"host interface {given[inside_name]!r} exists already")
                names[inside_name] = given[inside_name]
            elif inside_name not in names:
                taken = self._taken_names(record.ctid, host) if taken is None else taken
                for attempt in range(100):
                    seed = f"{self.node.node}/{record.ctid}/{inside_name}/{attempt}"
                    candidate = "ve" + hashlib.sha256(seed.encode()).hexdigest()[:11]
                    if candidate not in taken:
                        names[inside_name] = candidate
                        break
        for stale in [k for k in names if k not in wanted]:
            del names[stale]
        if names != record.interfaces:
            record = replace(record, interfaces=names)
            self.registry.put(record)
        return record, {k: names[k] for k in wanted}

    def _taken_names(self, ctid: int, host: IP | None = None) -> set[str]:
        if host is None:
            with IP(self.net.host_netns) as own:
                taken = {link.name for link in own.links()}
        else:
            taken = {link.name for link in host.links()}
        for other in self.registry.ctids():
            if other != ctid:
                rec = self.registry.find(other)
                if rec:
                    taken.update(rec.interfaces.values())
        return taken

    # -- start -----------------------------------------------------------------------------
    def start_hook(self, ctx: object) -> None:
        """The runtime's `network` stage hook: build everything for `ctx.record` (a StartContext)."""
        record: Record = ctx.record  # type: ignore[attr-defined]
        self.start(record, ctx.init_pid, revert=ctx.revert)  # type: ignore[attr-defined]

    def files_hook(self, ctx: object) -> None:
        """The runtime's `files` stage hook: resolv.conf and the template's address configuration."""
        record: Record = ctx.record  # type: ignore[attr-defined]
        inside.write(ctx.volume, self._inside_config(record.ctid, self.spec(record.ctid)))  # type: ignore[attr-defined]

    def start(self, record: Record, init_pid: int, *, revert: object | None = None) -> None:
        """Create the VPS's veths, routes, proxy entries, nft state and shaping for `init_pid`'s netns.

        One rtnetlink socket per namespace and one nft(8) run: each nft run reads the whole
        ruleset first, which grows with the node's VPSs. The live file is written before
        anything is built and removed last by `release`, so without it nothing is left over.
        """
        ctid = record.ctid
        spec = self.spec(ctid)
        if os.path.exists(self._live_path(ctid)):
            self.release(ctid)  # leftovers of a crash: counters are folded into the totals first
        if revert is not None:
            revert.add(lambda: self.release(ctid), "release network")  # type: ignore[attr-defined]
        vps_ns = f"/proc/{init_pid}/ns/net"
        with IP(self.net.host_netns) as host:
            record, hosts = self._host_names(record, spec, host)
            live = {"pid": init_pid, "starttime": _starttime(init_pid), "hosts": hosts, "ips": list(spec.ips)}
            self._write_live(ctid, live)
            host.veth_add(
                hosts[ROUTED_IFNAME],
                ROUTED_IFNAME,
                peer_netns=vps_ns,
                mac=make_mac(ctid, ROUTED_IFNAME, host=True),
                peer_mac=make_mac(ctid, ROUTED_IFNAME),
            )
            for netif in spec.netifs:
                host.veth_add(hosts[netif.name], netif.name, peer_netns=vps_ns, mac=netif.host_mac, peer_mac=netif.mac)
            for inside_name, name in hosts.items():  # whose it is, for reconcile after the records are lost
                host.link_set(name, alias=self.owner_alias(ctid, inside_name))
            # The table holds the addresses already (`_policies`): no element batch per address. It is
            # absent: `release` above deleted it, or no live file means nothing was built.
            self.nft.batch(rules.vps_table(self._vps_table(ctid), self._policies(ctid, spec, hosts), replace=False)
                           + self._vps_chains(ctid, spec, hosts))
            for name in hosts.values():
                self._sysctl(f"net.ipv6.conf.{name}.accept_ra", "0")
            routed = hosts[ROUTED_IFNAME]
            host.link_set(routed, up=True)
            host.addr_add(routed, f"{self.net.gateway4}/32")
            host.addr_add(routed, f"{self.net.gateway6}/64", nodad=True)
            with IP(vps_ns) as vps:
                vps.link_set("lo", up=True)
                vps.link_set(ROUTED_IFNAME, up=True)
                for netif in spec.netifs:
                    self._bridge_up(netif, hosts[netif.name], host, vps)
                for name in spec.netdevs:
                    self._move_netdev(name, vps_ns, into=True)
                self.devices.start(ctid, init_pid)
                for addr in spec.ips:
                    self._add_routes(ctid, host, vps, routed, addr)

    def _bridge_up(self, netif: Netif, host_if: str, host: IP, vps: IP) -> None:
        if host.link(netif.bridge) is None:
            raise InvalidArgument(f"{netif.name}: no bridge {netif.bridge!r} on this node")
        host.link_set(host_if, master=netif.bridge)
        host.link_set(host_if, up=True)
        vps.link_set(netif.name, up=True)

    def _sync_netifs(self, ctid: int, live: dict, old: VpsNet, spec: VpsNet) -> dict:
        """Bridged interfaces of a running VPS to `spec`: changed ones go, new ones come (counters kept)."""
        gone = [n for n in old.netifs if n not in spec.netifs]
        new = [n for n in spec.netifs if n not in old.netifs]
        hosts = dict(live["hosts"])
        self.traffic(fold=ctid)
        with IP(self.net.host_netns) as host:
            for netif in gone:
                name = hosts.pop(netif.name, None)
                if name:
                    host.link_del(name)
        _, names = self._host_names(self.registry.get(ctid), spec)
        hosts.update({n.name: names[n.name] for n in new})
        vps_ns = f"/proc/{live['pid']}/ns/net"
        with IP(self.net.host_netns) as host:
            for netif in new:
                host.veth_add(hosts[netif.name], netif.name, peer_netns=vps_ns, mac=netif.host_mac, peer_mac=netif.mac)
        for netif in new:
            self._sysctl(f"net.ipv6.conf.{hosts[netif.name]}.accept_ra", "0")
        live = {**live, "hosts": hosts}
        self._write_live(ctid, live)
        self._apply_vps_table(ctid, spec, hosts)
        self._apply_vps_chains(ctid, spec, hosts)
        with IP(self.net.host_netns) as host, IP(vps_ns) as vps:
            for netif in new:
                self._bridge_up(netif, hosts[netif.name], host, vps)
        return live

    def _drop_proxies(self, host: IP, addrs: Iterable[str]) -> None:
        """Withdraw the uplink's proxy ARP/NDP answers for the single addresses among `addrs`."""
        if self.net.uplink and host.link(self.net.uplink) is not None:
            for addr in addrs:
                net = ipaddress.ip_network(addr)
                if net.prefixlen == net.max_prefixlen:
                    host.neigh_del_proxy(str(net.network_address), dev=self.net.uplink)

    def _vps_table(self, ctid: int) -> str:
        return f"{self.prefix}_{ctid}"

    def _policies(self, ctid: int, spec: VpsNet, hosts: dict[str, str]) -> list[rules.DevicePolicy]:
        out = [
            rules.DevicePolicy(
                inside=ROUTED_IFNAME,
                host=hosts[ROUTED_IFNAME],
                mac=make_mac(ctid, ROUTED_IFNAME),
                ips=spec.ips,
                packet_rate=spec.packet_rate,
                out_bps=spec.rate.out_bps,
                in_bps=spec.rate.in_bps,
            )
        ]
        for netif in spec.netifs:
            out.append(
                rules.DevicePolicy(
                    inside=netif.name,
                    host=hosts[netif.name],
                    mac=netif.mac,
                    ips=netif.ips,
                    packet_rate=spec.packet_rate,
                    out_bps=spec.rate.out_bps,
                    in_bps=spec.rate.in_bps,
                    mark=ctid,
                )
            )
        return out

    def _apply_vps_table(self, ctid: int, spec: VpsNet, hosts: dict[str, str]) -> None:
        """(Re)build the per-VPS netdev table; its counters are folded into the totals first."""
        self.traffic(fold=ctid)
        self.nft.batch(rules.vps_table(self._vps_table(ctid), self._policies(ctid, spec, hosts)))

    def _apply_vps_chains(self, ctid: int, spec: VpsNet, hosts: dict[str, str]) -> None:
        self.nft.batch(self._vps_chains(ctid, spec, hosts))

    def _vps_chains(self, ctid: int, spec: VpsNet, hosts: dict[str, str]) -> str:
        smtp = spec.smtp or self.net.smtp_default
        cap = self.net.conntrack_max if spec.conntrack_max is None else spec.conntrack_max
        return rules.vps_chains(
            self.prefix,
            ctid,
            [hosts[ROUTED_IFNAME]],
            uplink=self.net.uplink,
            conntrack_max=cap,
            smtp_block=smtp == "block",
            bridged=bool(spec.netifs),
        )

    def _route_ip(self, ctid: int, live: dict, addr: str, *, add: bool) -> None:
        """Host route, proxy entry, anti-spoofing set element and the address inside, for one address."""
        host_if = live["hosts"][ROUTED_IFNAME]
        vps_ns = f"/proc/{live['pid']}/ns/net"
        net = ipaddress.ip_network(addr)
        single = net.prefixlen == net.max_prefixlen
        if add:
            self.nft.batch(rules.ip_element(self._vps_table(ctid), ROUTED_IFNAME, addr, add=True))
            with IP(self.net.host_netns) as host, IP(vps_ns) as vps:
                self._add_routes(ctid, host, vps, host_if, addr)
        else:
            with contextlib.suppress(NotFound):
                self.nft.batch(rules.ip_element(self._vps_table(ctid), ROUTED_IFNAME, addr, add=False))
            with IP(self.net.host_netns) as host:
                host.route_del(str(net), dev=host_if)
                if single and self.net.uplink:
                    host.neigh_del_proxy(str(net.network_address), dev=self.net.uplink)
            with contextlib.suppress(NotFound), IP(vps_ns) as vps:
                if single:
                    vps.addr_del(ROUTED_IFNAME, f"{net.network_address}/{net.max_prefixlen}")
        ips = [a for a in live["ips"] if a != addr] + ([addr] if add else [])
        live = {**live, "ips": ips}
        self._write_live(ctid, live)

    def _add_routes(self, ctid: int, host: IP, vps: IP, host_if: str, addr: str) -> None:
        """Host route, proxy entry and the address inside, for one address."""
        net = ipaddress.ip_network(addr)
        single = net.prefixlen == net.max_prefixlen
        gw = self.net.gateway6 if net.version == 6 else self.net.gateway4
        host.route_add(str(net), dev=host_if)
        if single and self.net.uplink and self.net.proxy_neighbours:
            host.neigh_add_proxy(str(net.network_address), dev=self.net.uplink)
        if single:
            vps.addr_add(ROUTED_IFNAME, f"{net.network_address}/{net.max_prefixlen}", nodad=True)
        # The gateway's MAC is fixed: no ARP/NDP round for it (the kernel drops the
        # entry with the last address of a family, so it is set with each address).
        vps.neigh_add(gw, make_mac(ctid, ROUTED_IFNAME, host=True), dev=ROUTED_IFNAME)
        if net.version == 4:
            vps.route_add(f"{gw}/32", dev=ROUTED_IFNAME)
        vps.route_add("default", via=gw, dev=ROUTED_IFNAME, onlink=net.version == 4)

    # -- live state ---------------------------------------------------------------------------
    def _write_live(self, ctid: int, live: dict) -> None:
        """Not durable: what it describes (veths, routes, nft state) is gone after a host crash too,
        which may leave the file empty; its readers take that as no live state (one fsync less per start)."""
        statefile.write_json(self._live_path(ctid), live, durable=False)

    def _live(self, ctid: int) -> dict | None:
        try:
            live = statefile.read_json(self._live_path(ctid))
        except (NotFound, ValueError):
            return None
        if _starttime(live["pid"]) != live["starttime"]:
            return None
        return live

    def is_live(self, ctid: int) -> bool:
        return self._live(ctid) is not None

    # -- stop / destroy ----------------------------------------------------------------------------
    def release(self, ctid: int) -> None:
        """Remove exactly this VPS's host-side state: veths, routes, proxy entries, tc, nft. Idempotent."""
        check_ctid(ctid)
        try:
            live = statefile.read_json(self._live_path(ctid))
        except (NotFound, ValueError):  # none, or left empty by a host crash (`_write_live`)
            live = {}
        record = self.registry.find(ctid)
        hosts = set((live.get("hosts") or {}).values()) | set(record.interfaces.values() if record else ())
        spec = self.spec(ctid)
        addrs = set(live.get("ips", ())) | set(spec.ips)
        self.traffic(fold=ctid)
        try:  # one nft run when the records name all of it
            self.nft.batch(rules.release_vps(self.prefix, self._vps_table(ctid), ctid, sorted(hosts)))
        except (CommandFailed, NotFound):  # no node table, or a map entry no record names jumps to its chains
            self.nft.delete_table("netdev", self._vps_table(ctid))
            self._remove_vps_chains(ctid, hosts)
        with IP(self.net.host_netns) as host:
            self._drop_proxies(host, addrs)
            owned = {ROUTED_IFNAME, *(n.name for n in spec.netifs)}
            for inside_name, name in record.interfaces.items() if record else ():
                if inside_name in owned or name in hosts:
                    host.link_del(name)  # its routes and qdiscs go with it
            for name in hosts:
                host.link_del(name)
        statefile.remove(self._live_path(ctid))

    # -- orphans (worker/reconcile.py) -----------------------------------------------------------
    def owner_alias(self, ctid: int, inside_name: str) -> str:
        """The alias `start` gives a host veth: names this node and the VPS, so a veth whose VPS this node
        no longer knows is still provably this node's (another node's veths carry its own name)."""
        return f"{ALIAS_PREFIX}{self.node.node}:{check_ctid(ctid)}:{inside_name}"

    def _owned_links(self, host: IP) -> dict[int, list[str]]:
        """CTID -> this node's host veths, by their alias."""
        found: dict[int, list[str]] = {}
        mine = f"{ALIAS_PREFIX}{self.node.node}:"
        for link in host.links():
            ctid, _, _ = link.alias.removeprefix(mine).partition(":")
            if link.alias.startswith(mine) and ctid.isdigit():
                found.setdefault(int(ctid), []).append(link.name)
        return found

    def leftovers(self, known: set[int]) -> dict[str, dict[int, list[str]]]:
        """This node's host-side objects of VPSs not in `known`: `veths` (by alias), the routes through
        them (`routes`; proxy entries on the uplink go with single addresses) and `nft` (the VPS's netdev
        table, its chains and counters in the node table). Read from netlink: no nft(8) run."""
        veths: dict[int, list[str]] = {}
        routes: dict[int, list[str]] = {}
        with IP(self.net.host_netns) as host:
            for ctid, names in self._owned_links(host).items():
                if ctid not in known:
                    veths[ctid] = sorted(names)
                    found = [r for name in names for r in host.routes(name)]
                    if found:
                        routes[ctid] = sorted(found)
        tables, counters = nfobjects.read(self.net.host_netns)
        nft: dict[int, list[str]] = {}
        for name, _ in self._vps_tables(tables):
            ctid = int(name.rsplit("_", 1)[1])
            if ctid not in known:
                nft.setdefault(ctid, []).append(f"netdev {name}")
        for counter in counters.get(("inet", self.prefix), {}):
            head, _, _ = counter.partition("_")
            if head[:1] == "v" and head[1:].isdigit() and int(head[1:]) not in known \
                    and f"inet {self.prefix} {head}" not in nft.get(int(head[1:]), []):
                nft.setdefault(int(head[1:]), []).append(f"inet {self.prefix} {head}")
        return {"veths": veths, "routes": routes, "nft": nft}

    def remove_leftovers(self, ctid: int) -> None:
        """Remove this node's host-side objects of a VPS it does not know any more: what its state files
        name (`release`) and the veths carrying its alias, with their routes and proxy entries."""
        with IP(self.net.host_netns) as host:
            names = self._owned_links(host).get(check_ctid(ctid), [])
            addrs = [r for name in names for r in host.routes(name)]
        self.release(ctid)
        with IP(self.net.host_netns) as host:
            self._drop_proxies(host, addrs)
            for name in names:
                host.link_del(name)  # its routes and qdiscs go with it

    def _remove_vps_chains(self, ctid: int, hosts: set[str]) -> None:
        try:
            items = self.nft.list("table", "inet", self.prefix)
        except NotFound:
            return
        present: set[str] = set()
        for item in items:
            if "chain" in item:
                present.add(f"chain:{item['chain']['name']}")
            elif "counter" in item:
                present.add(f"counter:{item['counter']['name']}")
            elif "set" in item or "map" in item:
                obj = item.get("set") or item["map"]
                for element in obj.get("elem", ()):
                    key = element[0] if isinstance(element, list) else element
                    present.add(f"{obj['name']}:{key}")
                    target = element[1].get("jump", {}).get("target", "") if isinstance(element, list) \
                        and isinstance(element[1], dict) else ""
                    if isinstance(key, str) and target.startswith(f"v{int(ctid)}_"):
                        hosts = hosts | {key}  # a veth gone with its VPS, or not named by any record (reconcile)
        self.nft.batch(rules.remove_vps_chains(self.prefix, ctid, sorted(hosts), present))

    # -- traffic ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _totals(self):  # type: ignore[no-untyped-def]
        path = os.path.join(self.dir, "traffic.json")
        with statefile.flocked(os.path.join(self.dir, "traffic.lock")):
            try:
                totals = statefile.read_json(path)
            except (NotFound, ValueError):
                totals = {"epoch": f"{time.time():.6f}", "vps": {}}
            yield totals
            statefile.write_json(path, totals)

    def traffic(self, *, fold: int | None = None) -> TrafficReport:
        """Running totals for every VPS of this node: two nft calls, whatever the number of VPSs.

        The kernel's counters live in each VPS's netdev table and restart when it is rebuilt;
        the totals file keeps `base` (folded from earlier tables) and the last reading of the
        current table (identified by its handle). `fold` moves that VPS's current table into
        its base (used right before the table is deleted or rebuilt).
        """
        all_tables, counters = nfobjects.read(self.net.host_netns)  # netlink: nft(8) would dump the ruleset
        tables = {name: handle for name, handle in self._vps_tables(all_tables)}
        out: dict[int, Traffic] = {}
        with self._totals() as totals:
            for key, entry in totals["vps"].items():
                ctid = int(key)
                name = self._vps_table(ctid)
                current = _sum(counters.get(("netdev", name), {})) if name in tables else None
                base = Traffic(*entry["base"])
                if current is not None and entry.get("handle") == tables[name]:
                    last = current
                else:
                    base = base + Traffic(*entry.get("last", [0, 0, 0, 0]))
                    last = current or Traffic()
                if fold == ctid:
                    base, last = base + last, Traffic()
                    entry["handle"] = None
                else:
                    entry["handle"] = tables.get(name)
                entry["base"], entry["last"] = base.as_list(), last.as_list()
                out[ctid] = base + last
            for name, handle in tables.items():
                ctid = int(name.rsplit("_", 1)[1])
                if str(ctid) not in totals["vps"]:
                    last = _sum(counters.get(("netdev", name), {}))
                    if fold == ctid:
                        totals["vps"][str(ctid)] = {"base": last.as_list(), "last": [0, 0, 0, 0], "handle": None}
                    else:
                        totals["vps"][str(ctid)] = {"base": [0, 0, 0, 0], "last": last.as_list(), "handle": handle}
                    out[ctid] = last
            return TrafficReport(epoch=totals["epoch"], vps=out)

    def _vps_tables(self, tables: dict[tuple[str, str], int]) -> list[tuple[str, int]]:
        """(name, handle) of this node's VPS netdev tables among `tables`."""
        out = []
        for (family, name), handle in tables.items():
            if family == "netdev" and name.startswith(self.prefix + "_"):
                tail = name[len(self.prefix) + 1 :]
                if tail.isdigit():
                    out.append((name, handle))
        return out

    # -- inside --------------------------------------------------------------------------------
    def _inside_config(self, ctid: int, spec: VpsNet) -> inside.InsideConfig:
        record = self.registry.get(ctid)
        style = inside.style_of(self.node, record.template)
        return inside.InsideConfig(
            style=style,
            ips=spec.ips,
            gateway4=self.net.gateway4,
            gateway6=self.net.gateway6,
            nameservers=spec.nameservers,
            searchdomains=spec.searchdomains,
        )

    def _write_inside(self, ctid: int, spec: VpsNet) -> None:
        record = self.registry.find(ctid)
        if record is not None:
            inside.write(record.volume, self._inside_config(ctid, spec))


def _all_ips(spec: VpsNet) -> list[str]:
    return [*spec.ips, *(a for n in spec.netifs for a in n.ips)]


def _sum(counters: dict[str, Counter]) -> Traffic:
    """The `*_in` / `*_out` counters of one VPS table; ingress counts skip the Ethernet header."""
    t = Traffic()
    for name, c in counters.items():
        suffix = name.split("_", 1)[-1]  # counters are <interface>_<suffix>; interface names have no "_"
        if suffix == "in":
            t = t + Traffic(in_bytes=c.bytes, in_packets=c.packets)
        elif suffix == "out":
            t = t + Traffic(out_bytes=c.bytes + rules.ETH_HLEN * c.packets, out_packets=c.packets)
    return t
