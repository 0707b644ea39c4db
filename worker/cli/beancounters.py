"""Beancounters on the node CLIs: `vzctl set --ram/--swap/--numproc/... [--save]`, the limits of
`vzctl create --config`, and the tables behind `vzubc` and vzlist's beancounter columns
(docs/cli.md, docs/beancounters.md).

A VPS's saved limits are the node worker's (`worker.vps.beancounters_path`,
`<state_root>/ubc/limits-CTID.json`): the runtime's "limits" start stage applies
them, and `CTID.conf` shows them as OpenVZ's lines. As in OpenVZ, `set` without
`--save` changes a running VPS only; with `--save` it also stores the values.
Parameters that share a kernel file with one not given (v1's memsw: ram and
swap; the CPU quota and cpuset: cpus, cpulimit, cpumask) are written with the
saved value of the other, as OpenVZ's vswap fills physpages from the config.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from worker.cli import codes
from worker.cli.codes import Fail

if TYPE_CHECKING:
    import argparse

    from kernel.runtime import Runtime
    from kernel.ubc import Limits, Row

PAGE = 4096
#: vzctl set flags (kernel.ubc.limits.FLAGS without numpty: the node's start does not pass devpts `max=` yet)
FLAGS = ("ram", "swap", "physpages", "swappages", "numproc", "cpus", "cpulimit", "cpuunits", "cpumask",
         "iolimit", "iopslimit", "ioprio", "numfile", "shmpages")
_HELP = {
    "ram": "RAM: bytes, K/M/G/T/P, B:L, unlimited", "swap": "swap on top of RAM, as --ram",
    "physpages": "RAM in 4 KiB pages (or a size)", "swappages": "swap in 4 KiB pages (or a size)",
    "numproc": "processes and threads", "cpus": "visible CPUs (0 = all)",
    "cpulimit": "percent of one CPU (150 = 1.5 CPUs)", "cpuunits": "CPU weight (default 1000)",
    "cpumask": "CPU list (0-1,3) or all", "iolimit": "bytes/s each direction (10M)",
    "iopslimit": "I/O operations/s each direction", "ioprio": "I/O priority 0 (high) .. 7 (low)",
    "numfile": "open files per process (at most 20000 here)", "shmpages": "SysV shm, in pages (or a size)",
}
ACCOUNTED = frozenset({"numfile", "numpty", "numtcpsock", "numothersock", "numflock", "numiptent"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag in FLAGS:
        parser.add_argument(f"--{flag}", metavar="VALUE", help=_HELP[flag])


def requested(ns: argparse.Namespace) -> list[str]:
    """The beancounter flags given, in FLAGS order."""
    return [flag for flag in FLAGS if getattr(ns, flag, None) is not None]


@dataclass(frozen=True)
class Change:
    """A checked `vzctl set`: the saved limits, the saved limits with the change, the fields given."""

    base: Limits
    new: Limits
    fields: tuple[str, ...]


def _up_to_page(value: int) -> int:
    return -(-value // PAGE) * PAGE


def parse(rt: Runtime, ctid: int, ns: argparse.Namespace) -> Change:
    """The flags over the VPS's saved limits, every value checked before anything changes."""
    from kernel import ubc
    from kernel.errors import InvalidArgument, NotSupported
    from kernel.ubc.apply import choose_cpus, host_cpus
    from kernel.ubc.limits import FLAGS as KERNEL_FLAGS
    from worker import vps

    base = vps.beancounters(rt, ctid)
    new, fields = base, []
    for flag in requested(ns):
        value = getattr(ns, flag)
        try:
            new = ubc.parse_set([f"--{flag}", value], new)[0]
        except InvalidArgument as exc:
            raise Fail(codes.BAD_VALUE, f"Bad parameter for --{flag}: {value} ({exc})") from None
        field = KERNEL_FLAGS[f"--{flag}"][0]
        if field not in fields:
            fields.append(field)
    # Memory is limited in pages: a size that is not a whole number of pages is rounded up.
    new = replace(new, ram=_up_to_page(new.ram), swap=_up_to_page(new.swap), shmpages=_up_to_page(new.shmpages))
    if {"cpus", "cpumask"} & set(fields):
        try:
            choose_cpus(new, host_cpus(rt.cgroups), ctid)
        except NotSupported as exc:
            raise Fail(codes.BAD_VALUE, f"Bad parameter for --cpumask: {new.cpumask} ({exc})") from None
    return Change(base, new, tuple(fields))


def refuse_stopped(rt: Runtime, ctid: int, save: bool) -> None:
    """OpenVZ's check: without --save, beancounters can only change on a running VPS."""
    if not save and not rt.status(ctid).running:
        raise Fail(codes.NOT_RUNNING, "Unable to apply UBC parameters: container is not running "
                   "(--save stores them for its next start)")


def apply(rt: Runtime, ctid: int, change: Change, *, save: bool) -> list[str]:
    """Set `change` on the running VPS and, with `save`, store it; lines to print.

    The kernel refusing a value (e.g. a memory limit under what the VPS holds and cannot
    reclaim) puts the given parameters back to their saved values and saves nothing."""
    from kernel import ubc
    from kernel.errors import KernelError
    from worker import vps

    lines: list[str] = []
    with rt.lock(ctid):
        status = rt.status(ctid)
        if status.running:
            io = {"iolimit", "iopslimit"} & set(change.fields)
            device = ubc.backing_device(rt.storage.activate(ctid)) if io else None
            try:
                done = ubc.apply(rt.cgroups, ctid, change.new, init_pid=status.init_pid, device=device,
                                 previous=change.base, only=change.fields)
            except KernelError as exc:
                with contextlib.suppress(KernelError):  # the first refusal is what the caller needs
                    ubc.apply(rt.cgroups, ctid, change.base, init_pid=status.init_pid, device=device,
                              only=change.fields)
                raise Fail(codes.SETUBC_ERROR, f"Unable to set UBC parameters: {exc}; "
                           f"{', '.join(change.fields)} back at their saved values") from None
            live = [name for name in change.fields if name not in done.restart and name not in done.skipped]
            if live:
                lines.append(f"UB limits were set on the running container: {', '.join(live)}")
            if done.restart:
                lines.append(f"Needs a restart to take effect: {', '.join(done.restart)}"
                             + ("" if save else " (not saved: use --save)"))
            lines += [f"Warning: {name} not applied: {why}" for name, why in done.skipped.items()]
        if save:
            vps.save_beancounters(rt, ctid, change.new)
            if not status.running:
                lines.append(f"Applied at the next start: {', '.join(change.fields)}")
        elif status.running:
            lines.append("WARNING: Settings were not saved to config and will be lost after CT restart "
                         "(use --save flag)")
    return lines


def conf_values(limits: Limits) -> dict[str, str]:
    """The VPS's beancounters as CTID.conf lines (PHYSPAGES, SWAPPAGES, NUMPROC, ... as the samples)."""
    import dataclasses

    from worker.cli import conf

    fields = dataclasses.asdict(limits)
    out = conf.limits_to_conf({k: v for k, v in fields.items() if k in conf.LIMIT_KEYS})
    out.update(CPUMASK=limits.cpumask or "all", IOPRIO=str(limits.ioprio))
    return out


def from_sample(sample: dict[str, str]) -> tuple[Limits, list[str]]:
    """A sample's beancounter limits (vzctl create --config) and notes on what this node changed:
    numfile above the host's RLIMIT_NOFILE cap gets the cap."""
    from kernel import ubc
    from kernel.errors import InvalidArgument
    from worker.cli import conf

    try:
        return ubc.Limits.for_node(conf.limits_from_conf(sample))
    except (KeyError, ValueError, InvalidArgument) as exc:
        raise Fail(codes.NO_CONFIG, f"Sample config has no valid limit: {exc}") from None


# -- tables (vzubc, vzlist) ---------------------------------------------------------------------------
class Tables:
    """Beancounter tables of a node's running VPSs, read once per command: the fast tier's rows
    (cgroup files; counters since the VPS's start, as OpenVZ's) and, when asked for, the
    accounting tier's (descriptors, sockets, ptys, locks, nft rules of the VPS's processes)."""

    def __init__(self, rt: Runtime) -> None:
        from kernel.ubc import FastReader

        self.rt = rt
        self.reader = FastReader(rt.cgroups)
        self._fast: dict[int, dict[str, Row] | None] = {}
        self._accounted: dict[int, dict[str, Row]] = {}

    def fast(self, ctid: int) -> dict[str, Row] | None:
        """The fast tier's rows; None when the VPS has no cgroups (not running)."""
        from kernel.errors import KernelError

        if ctid not in self._fast:
            try:
                self._fast[ctid] = self.reader.read_one(ctid).rows
            except KernelError:
                self._fast[ctid] = None
        return self._fast[ctid]

    def accounted(self, ctid: int) -> dict[str, Row]:
        """The accounting rows; numfile's barrier is the RLIMIT_NOFILE the init has now (a live
        `vzctl set --numfile` without --save is not in the saved limits)."""
        import resource

        from kernel import ubc
        from kernel.ubc.limits import NUMFILE_HOST_CAP
        from worker import vps

        if ctid not in self._accounted:
            limits = vps.beancounters(self.rt, ctid)
            pid = self.rt.status(ctid).init_pid
            if pid:
                with contextlib.suppress(OSError):
                    limits = replace(limits, numfile=min(resource.prlimit(pid, resource.RLIMIT_NOFILE)[1],
                                                         NUMFILE_HOST_CAP))
            self._accounted[ctid] = ubc.account(self.rt.cgroups, {ctid: limits}).get(ctid, {})
        return self._accounted[ctid]

    def table(self, ctid: int, *, accounting: bool = True) -> dict[str, Row] | None:
        rows = self.fast(ctid)
        if rows is None:
            return None
        return {**rows, **self.accounted(ctid)} if accounting else dict(rows)

    def configured(self, ctid: int) -> dict[str, tuple[int, int]]:
        """barrier and limit of the rows the saved limits set (what a stopped VPS starts with)."""
        from kernel.ubc import UNLIMITED
        from kernel.ubc.limits import NUMFILE_HOST_CAP
        from worker import vps

        limits = vps.beancounters(self.rt, ctid)
        values = {"physpages": limits.ram, "swappages": limits.swap, "numproc": limits.numproc,
                  "numfile": limits.numfile or NUMFILE_HOST_CAP, "numpty": limits.numpty}
        return {name: (value or UNLIMITED, value or UNLIMITED) for name, value in values.items()}


_tables: weakref.WeakKeyDictionary[Runtime, Tables] = weakref.WeakKeyDictionary()


def tables_of(rt: Runtime) -> Tables:
    """One `Tables` per runtime (a vzlist run), so its columns share one read per VPS."""
    if rt not in _tables:
        _tables[rt] = Tables(rt)
    return _tables[rt]


_COLUMN = {"": 0, "m": 1, "b": 2, "l": 3, "f": 4}  # held, maxheld, barrier, limit, failcnt


def cell(rt: Runtime, ctid: int, running: bool, field: str) -> object:
    """vzlist's `row[.m|.b|.l|.f]` of one VPS as OpenVZ prints it (pages for page rows, unlimited as
    9223372036854775807); for a stopped VPS held, maxheld and failcnt are '-' and barrier and
    limit the saved ones; '-' for a row the node does not measure."""
    from kernel.ubc import Row
    from kernel.ubc.views import openvz_values

    name, _, suffix = field.partition(".")
    index = _COLUMN[suffix]
    tables = tables_of(rt)
    rows = tables.table(ctid, accounting=name in ACCOUNTED) if running else None
    if rows is not None:
        return openvz_values(name, rows[name])[index] if name in rows else "-"
    configured = tables.configured(ctid)
    if index in (2, 3) and name in configured:
        return openvz_values(name, Row(0, 0, *configured[name], 0))[index]
    return "-"


#: OpenVZ vzlist's header of each beancounter row; a column is HEADER, HEADER.M, .B, .L, .F
HEADERS = {"kmemsize": "KMEMSIZE", "lockedpages": "LOCKEDP", "privvmpages": "PRIVVMP", "shmpages": "SHMP",
           "numproc": "NPROC", "physpages": "PHYSP", "vmguarpages": "VMGUARP", "oomguarpages": "OOMGUARP",
           "numtcpsock": "NTCPSOCK", "numflock": "NFLOCK", "numpty": "NPTY", "numsiginfo": "NSIGINFO",
           "tcpsndbuf": "TCPSNDB", "tcprcvbuf": "TCPRCVB", "othersockbuf": "OTHSOCKB", "dgramrcvbuf": "DGRAMRB",
           "numothersock": "NOTHSOCK", "dcachesize": "DCACHESZ", "numfile": "NFILE", "numiptent": "NIPTENT",
           "swappages": "SWAPP"}
#: vzlist field -> header; every row with OpenVZ's suffixes
FIELDS = {name + (f".{s}" if s else ""): header + (f".{s.upper()}" if s else "")
          for name, header in HEADERS.items() for s in _COLUMN}
