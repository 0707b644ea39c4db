"""`vzlist`: the node's VPSs in OpenVZ's columns (docs/cli.md)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from worker.cli import beancounters, codes, disk
from worker.cli.config import CliConfig

if TYPE_CHECKING:
    from kernel.registry import Record
    from kernel.runtime import Runtime, Status


def _numproc(rt: Runtime, ctid: int, running: bool) -> int:
    if not running:
        return 0
    try:
        return len(rt.cgroups.pids(ctid))
    except Exception:
        return 0


def _addresses(rt: Runtime, ctid: int) -> str:
    """The VPS's assigned addresses (its network's desired state), host addresses without their prefix."""
    import ipaddress

    from kernel.net.network import Network

    shown = []
    for ip in Network(rt.config).spec(ctid).ips:
        net = ipaddress.ip_network(ip, strict=False)
        shown.append(str(net.network_address) if net.prefixlen == net.max_prefixlen else ip)
    return " ".join(shown) or "-"


def _state(status: Status) -> str:
    if status.running:
        return "paused" if status.frozen else "running"
    return "mounted" if status.mounted else "stopped"


# field -> (header, right-aligned, value)
FIELDS: dict[str, tuple[str, bool, Callable[[Runtime, Record, Status], object]]] = {
    "ctid": ("CTID", True, lambda rt, r, s: r.ctid),
    "numproc": ("NPROC", True, lambda rt, r, s: _numproc(rt, r.ctid, s.running)),
    "status": ("STATUS", False, lambda rt, r, s: _state(s)),
    "ip": ("IP_ADDR", False, lambda rt, r, s: _addresses(rt, r.ctid)),
    "hostname": ("HOSTNAME", False, lambda rt, r, s: r.hostname or "-"),
    "ostemplate": ("OSTEMPLATE", False, lambda rt, r, s: r.template),
    "onboot": ("ONBOOT", False, lambda rt, r, s: "yes" if r.onboot else "no"),
    "private": ("PRIVATE", False, lambda rt, r, s: r.volume),
    "root": ("ROOT", False, lambda rt, r, s: rt.root_path(r.ctid)),
    "init_pid": ("INIT_PID", True, lambda rt, r, s: s.init_pid or "-"),
    "panel_managed": ("PANEL", False, lambda rt, r, s: "yes" if r.panel_managed else "no"),
    "node": ("NODE", False, lambda rt, r, s: r.node),
}
FIELDS.update({name: (header, right, lambda rt, r, s, value=value: value(rt, r.ctid))
               for name, (header, right, value) in disk.FIELDS.items()})
FIELDS.update({name: (header, True, lambda rt, r, s, name=name: beancounters.cell(rt, r.ctid, s.running, name))
               for name, header in beancounters.FIELDS.items() if name not in FIELDS})
DEFAULT = ("ctid", "numproc", "status", "ip", "hostname")


def _json_value(field: str, value: object) -> object:
    if value == "-":
        return None
    if field in ("onboot", "panel_managed"):
        return value == "yes"
    return value


def render(rows: list[dict[str, object]], fields: list[str], *, header: bool, as_json: bool) -> str:
    if as_json:
        import json

        return json.dumps([{f: _json_value(f, row[f]) for f in fields} for row in rows], indent=2)
    table = [[str(row[f]) for f in fields] for row in rows]
    if header:
        table.insert(0, [FIELDS[f][0] for f in fields])
    widths = [max(len(line[i]) for line in table) for i in range(len(fields))] if table else []
    lines = []
    for line in table:
        cells = [c.rjust(w) if FIELDS[f][1] else c.ljust(w) for c, w, f in zip(line, widths, fields, strict=True)]
        lines.append(" ".join(cells).rstrip())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from kernel.runtime import Runtime

    parser = argparse.ArgumentParser(prog="vzlist", description="List the VPSs of this ctpanel node.")
    parser.add_argument("-a", "--all", action="store_true", help="running and stopped")
    parser.add_argument("-S", "--stopped", action="store_true", help="stopped only")
    parser.add_argument("-o", "--output", help="comma-separated fields: "
                        f"{','.join(f for f in FIELDS if f not in beancounters.FIELDS)} and every "
                        "beancounter row (physpages, numproc, ...) with .m/.b/.l/.f")
    parser.add_argument("-H", "--no-header", action="store_true")
    parser.add_argument("-j", "--json", action="store_true")
    parser.add_argument("-1", "--name-only", dest="ids_only", action="store_true", help="CTIDs only, no header")
    parser.add_argument("ctids", nargs="*", type=int)
    try:
        ns = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return codes.OK if exc.code == 0 else codes.BAD_SYNTAX
    fields = ["ctid"] if ns.ids_only else (ns.output.split(",") if ns.output else list(DEFAULT))
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        print(f"Unknown field: {', '.join(unknown)} (known: {', '.join(FIELDS)})", file=sys.stderr)
        return codes.BAD_SYNTAX
    rt = Runtime(CliConfig.from_env().kernel())
    rows = []
    for ctid in ns.ctids or rt.registry.ctids():
        record = rt.registry.find(ctid)
        if record is None:
            continue
        status = rt.status(ctid)
        if (ns.stopped and status.running) or not (ns.all or ns.stopped or ns.ctids or status.running):
            continue
        rows.append({f: FIELDS[f][2](rt, record, status) for f in fields})
    out = render(rows, fields, header=not (ns.no_header or ns.ids_only), as_json=ns.json)
    if out:
        print(out)
    if not rows and not ns.json:
        print("Container(s) not found", file=sys.stderr)
        return 1 if ns.ctids else codes.OK
    return codes.OK


if __name__ == "__main__":
    sys.exit(main())
