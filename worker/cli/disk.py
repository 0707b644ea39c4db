"""Disk quota on the node CLIs: vzctl's --diskspace/--diskinodes/--quotaugidlimit, --layout,
vzlist's diskspace/diskinodes columns (docs/cli.md, docs/storage.md).

Units are OpenVZ's: diskspace in 1 KiB blocks or with a K/M/G/T suffix, inode
counts as plain numbers, `unlimited` (or 0) for no limit, `SOFT:HARD` or one
value for both. The storage keeps bytes.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from worker.cli import codes
from worker.cli.codes import Fail

if TYPE_CHECKING:
    import argparse

    from kernel.runtime import Runtime
    from kernel.storage.base import Limits

KiB = 1024
UNLIMITED = "unlimited"
_SIZE = re.compile(r"^(\d+)([KMGTkmgt]?)$")
_SCALE = {"": KiB, "K": KiB, "M": KiB**2, "G": KiB**3, "T": KiB**4}


def parse_size(text: str, *, blocks: bool) -> int:
    """One OpenVZ value: bytes from 1 KiB blocks or a suffixed size (`blocks`), else a plain count."""
    if text == UNLIMITED:
        return 0
    match = _SIZE.match(text)
    if not match or (match.group(2) and not blocks):
        unit = "1 KiB blocks or a size with K/M/G/T" if blocks else "a number"
        raise Fail(codes.BAD_VALUE, f"Invalid value {text!r}: expected {unit}, or {UNLIMITED}")
    return int(match.group(1)) * (_SCALE[match.group(2).upper()] if blocks else 1)


def parse_pair(text: str, *, blocks: bool) -> tuple[int, int]:
    """`SOFT:HARD` or one value for both; (soft, hard) in bytes or counts."""
    soft, sep, hard = text.partition(":")
    pair = (parse_size(soft, blocks=blocks), parse_size(hard if sep else soft, blocks=blocks))
    if pair[1] and pair[0] > pair[1]:
        raise Fail(codes.BAD_VALUE, f"Invalid value {text!r}: the soft limit is above the hard one")
    return pair


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--diskspace", metavar="SOFT[:HARD]", help="1 KiB blocks or K/M/G/T; unlimited")
    parser.add_argument("--diskinodes", metavar="SOFT[:HARD]", help="inode count; unlimited")
    parser.add_argument("--quotaugidlimit", metavar="N", help="user/group ids with second-level quota; 0 = off")


def requested(ns: argparse.Namespace) -> bool:
    return any(getattr(ns, k) is not None for k in ("diskspace", "diskinodes", "quotaugidlimit"))


def limits(ns: argparse.Namespace, current: Limits) -> Limits:
    """`current` with the values given on the command line."""
    from kernel.errors import InvalidArgument
    from kernel.storage.base import Limits

    space = parse_pair(ns.diskspace, blocks=True) if ns.diskspace is not None else current.diskspace
    inodes = parse_pair(ns.diskinodes, blocks=False) if ns.diskinodes is not None else current.diskinodes
    ugid = current.quotaugidlimit
    if ns.quotaugidlimit is not None:
        if not ns.quotaugidlimit.isdigit():
            raise Fail(codes.BAD_VALUE, f"Invalid quotaugidlimit {ns.quotaugidlimit!r}: expected a number")
        ugid = int(ns.quotaugidlimit)
    try:
        return Limits(diskspace=space, diskinodes=inodes, quotaugidlimit=ugid)
    except InvalidArgument as exc:
        raise Fail(codes.BAD_VALUE, str(exc)) from None


def conf_values(value: Limits) -> dict[str, str]:
    """DISKSPACE (KiB), DISKINODES, QUOTAUGIDLIMIT lines of CTID.conf."""

    def pair(soft: int, hard: int, unit: int) -> str:
        return ":".join(str(v // unit) if v else UNLIMITED for v in (soft, hard))

    return {
        "DISKSPACE": pair(*value.diskspace, KiB),
        "DISKINODES": pair(*value.diskinodes, 1),
        "QUOTAUGIDLIMIT": str(value.quotaugidlimit),
    }


def from_conf(values: dict[str, str], current: Limits) -> Limits:
    """A sample's DISKSPACE/DISKINODES/QUOTAUGIDLIMIT over `current` (vzctl create --config)."""
    import argparse

    ns = argparse.Namespace(diskspace=values.get("DISKSPACE"), diskinodes=values.get("DISKINODES"),
                            quotaugidlimit=values.get("QUOTAUGIDLIMIT"))
    return limits(ns, current)


def set_limits(rt: Runtime, ctid: int, new: Limits) -> Limits:
    """Apply `new` at once where the driver can; a stopped VPS's volume is deactivated first, so
    changes that need it offline (image shrink, switching the second level) can run."""
    from kernel import errors

    with rt.lock(ctid):
        volume = rt.storage.get(ctid)
        if volume.limits == new:
            return new
        if not rt.status(ctid).mounted:
            rt.storage.deactivate(ctid)
        try:
            return rt.storage.set_limits(ctid, new)
        except (errors.NotSupported, errors.NoSpace, errors.Busy, errors.InvalidArgument,
                errors.CommandFailed) as exc:
            raise Fail(codes.DQ_SET, f"Unable to set disk quota parameters: {exc}") from None


def pool_for(rt: Runtime, layout: str | None) -> str | None:
    """`--layout NAME`: a pool of that name, else the node's only pool with that driver."""
    if layout is None:
        return None
    if layout in rt.storage.pools:
        return layout
    matches = [name for name, driver in rt.storage.pools.items() if driver.name == layout]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(f"{name} ({driver.name})" for name, driver in rt.storage.pools.items())
    why = "several pools have that driver: name one" if matches else "no such pool or driver"
    raise Fail(codes.BAD_VALUE, f"Invalid --layout {layout!r}: {why}; this node has {known}")


# -- vzlist columns ---------------------------------------------------------------------------------
def _usage_kib(rt: Runtime, ctid: int) -> object:
    try:
        return rt.storage.usage(ctid).bytes_used // KiB
    except Exception:  # no volume, or a driver that cannot tell: shown as "-"
        return "-"


def _inodes(rt: Runtime, ctid: int) -> object:
    try:
        used = rt.storage.usage(ctid).inodes_used
    except Exception:
        return "-"
    return "-" if used is None else used


def _limit(rt: Runtime, ctid: int, field: str, index: int, unit: int) -> object:
    volume = rt.storage.find(ctid)
    if volume is None:
        return "-"
    value = getattr(volume.limits, field)[index]
    return value // unit if value else UNLIMITED


#: vzlist field -> (header, right-aligned, value of a CTID); sizes in 1 KiB blocks like OpenVZ's
FIELDS = {
    "diskspace": ("DQBLOCKS", True, _usage_kib),
    "diskspace.s": ("DQBLOCKS.S", True, lambda rt, ctid: _limit(rt, ctid, "diskspace", 0, KiB)),
    "diskspace.h": ("DQBLOCKS.H", True, lambda rt, ctid: _limit(rt, ctid, "diskspace", 1, KiB)),
    "diskinodes": ("DQINODES", True, _inodes),
    "diskinodes.s": ("DQINODES.S", True, lambda rt, ctid: _limit(rt, ctid, "diskinodes", 0, 1)),
    "diskinodes.h": ("DQINODES.H", True, lambda rt, ctid: _limit(rt, ctid, "diskinodes", 1, 1)),
    "layout": ("LAYOUT", False, lambda rt, ctid: _layout(rt, ctid)),
}


def _layout(rt: Runtime, ctid: int) -> str:
    volume = rt.storage.find(ctid)
    return "-" if volume is None else f"{volume.pool}/{volume.driver}"
