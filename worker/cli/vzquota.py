"""`vzquota`: a VPS's disk quota from the node, both levels (docs/cli.md).

    vzquota stat CTID                       first level: use and limits of the whole VPS
    vzquota setlimit CTID -u|-g NAME|ID [--blocks SOFT[:HARD]] [--inodes SOFT[:HARD]]
    vzquota show CTID [-u|-g]               second level: every id with a limit or use
    vzquota publish CTID                    rewrite the per-id files users read inside

Named after OpenVZ's own tool. Second-level limits need `quotaugidlimit` > 0
(`vzctl set CTID --quotaugidlimit N`) and an `image` volume. Names are looked
up in the VPS's own /etc/passwd or /etc/group (read through
`kernel.vpsfiles`, never following the VPS's symlinks out of its root). After
each change, every id's own usage and limits are written inside the VPS to
/var/lib/ctpanel/quota/{user,group}.<id>, readable by that id only.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from worker.cli import codes, disk
from worker.cli.codes import Fail
from worker.cli.config import CliConfig
from worker.cli.vzctl import parse_ctid, runtime

if TYPE_CHECKING:
    import argparse

    from kernel.runtime import Runtime
    from kernel.storage.volumes import Volume


def _parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(prog="vzquota", description="Disk quota of the VPSs on this ctpanel node.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("stat", help="first level: the VPS's use and limits").add_argument("ctid")
    p = sub.add_parser("setlimit", help="second level: limits of one user or group of the VPS")
    p.add_argument("ctid")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("-u", "--user", metavar="NAME|UID")
    kind.add_argument("-g", "--group", metavar="NAME|GID")
    p.add_argument("--blocks", default="unlimited", metavar="SOFT[:HARD]", help="1 KiB blocks or K/M/G/T")
    p.add_argument("--inodes", default="unlimited", metavar="SOFT[:HARD]")
    p = sub.add_parser("show", help="second level: every user/group id with a limit or use")
    p.add_argument("ctid")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("-u", dest="kinds", action="store_const", const=("user",))
    kind.add_argument("-g", dest="kinds", action="store_const", const=("group",))
    sub.add_parser("publish", help="rewrite the per-id usage files inside the VPS").add_argument("ctid")
    return parser


def _volume(rt: Runtime, ctid: int) -> Volume:
    volume = rt.storage.find(ctid)
    if volume is None:
        raise Fail(codes.NO_PRIVATE, f"Container {ctid} does not exist")
    return volume


def _second_level(rt: Runtime, ctid: int) -> None:
    if not _volume(rt, ctid).limits.quotaugidlimit:
        raise Fail(codes.DQ_UGID_NOTINITIALIZED,
                   f"Second-level quota is off for CT {ctid}: vzctl set {ctid} --quotaugidlimit N first")


def resolve(rt: Runtime, ctid: int, kind: str, text: str) -> int:
    """A user/group id of the VPS: a number as it is, a name from the VPS's own passwd/group file."""
    from kernel import vpsfiles

    if text.isdigit():
        ident = int(text)
    else:
        table = "/etc/passwd" if kind == "user" else "/etc/group"
        with vpsfiles.VpsRoot(rt.storage.activate(ctid)) as root:
            lines = root.read_text(table, default="").splitlines()
        found = [line.split(":")[2] for line in lines if line.split(":")[0] == text and line.count(":") >= 3]
        if not found or not found[0].isdigit():
            raise Fail(codes.BAD_VALUE, f"No {kind} {text!r} in CT {ctid}'s {table}")
        ident = int(found[0])
    if ident > 65535:
        raise Fail(codes.BAD_VALUE, f"{kind} id {ident} is outside the VPS's ids (0-65535)")
    return ident


def _limit(value: int, unit: int = 1) -> str:
    return str(value // unit) if value else disk.UNLIMITED


def cmd_stat(rt: Runtime, ctid: int) -> str:
    volume = _volume(rt, ctid)
    try:
        usage = rt.storage.usage(ctid)
    except Exception as exc:
        raise Fail(codes.GET_QUOTA_USAGE, f"Unable to get disk usage of CT {ctid}: {exc}") from None
    inodes = "-" if usage.inodes_used is None else str(usage.inodes_used)
    rows = [("resource", "usage", "softlimit", "hardlimit"),
            ("1k-blocks", str(usage.bytes_used // disk.KiB), *(_limit(v, disk.KiB) for v in volume.limits.diskspace)),
            ("inodes", inodes, *(_limit(v) for v in volume.limits.diskinodes))]
    lines = ["".join(cell.rjust(12) for cell in row) for row in rows]
    lines.append(f"layout {volume.pool}/{volume.driver}, quotaugidlimit {volume.limits.quotaugidlimit}")
    return "\n".join(lines)


def cmd_setlimit(rt: Runtime, ctid: int, ns: argparse.Namespace) -> str:
    from kernel import errors

    _second_level(rt, ctid)
    kind, text = ("user", ns.user) if ns.user is not None else ("group", ns.group)
    ident = resolve(rt, ctid, kind, text)
    blocks = disk.parse_pair(ns.blocks, blocks=True)
    inodes = disk.parse_pair(ns.inodes, blocks=False)
    try:
        with rt.lock(ctid):
            rt.storage.set_ugid_quota(ctid, kind, ident, blocks, inodes)
    except (errors.NotSupported, errors.LimitReached, errors.InvalidArgument, errors.CommandFailed) as exc:
        raise Fail(codes.ERROR_SET_USER_QUOTA, f"Unable to set {kind} quota of CT {ctid}: {exc}") from None
    return f"Set {kind} {ident} quota of CT {ctid}: blocks {ns.blocks}, inodes {ns.inodes}"


def cmd_show(rt: Runtime, ctid: int, kinds: tuple[str, ...]) -> str:
    _second_level(rt, ctid)
    rows = [("type", "id", "1k-blocks", "soft", "hard", "inodes", "soft", "hard")]
    for kind in kinds:
        for row in rt.storage.ugid_report(ctid, kind):
            rows.append((kind, str(row["id"]), str(row["bytes"] // disk.KiB), _limit(row["bsoft"], disk.KiB),
                         _limit(row["bhard"], disk.KiB), str(row["inodes"]), _limit(row["isoft"]),
                         _limit(row["ihard"])))
    return "\n".join("".join(cell.rjust(11) for cell in row) for row in rows)


def run(argv: list[str], config: CliConfig) -> int:
    try:
        ns = _parser().parse_args(argv)
    except SystemExit as exc:
        return codes.OK if exc.code == 0 else codes.BAD_SYNTAX
    ctid = parse_ctid(ns.ctid)
    rt = runtime(config)
    if ns.command == "stat":
        print(cmd_stat(rt, ctid))
    elif ns.command == "setlimit":
        print(cmd_setlimit(rt, ctid, ns))
    elif ns.command == "show":
        print(cmd_show(rt, ctid, ns.kinds or ("user", "group")))
    else:
        _second_level(rt, ctid)
        print(f"Wrote {rt.storage.publish_quota(ctid)} quota files into CT {ctid}")
    return codes.OK


def main(argv: list[str] | None = None) -> int:
    return codes.command_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
