"""Putting `Limits` into the kernel: cgroup files, rlimits, I/O priority, IPC sysctls.

`plan()` is pure: the cgroup writes for one cgroup version, in a safe order.
`apply()` performs them on a VPS at start (the runtime's "limits" hook, see
`limits_hook`) or live on a running VPS; it says which changes wait for a
restart. Limits go on the outer cgroup, which the VPS cannot write.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kernel import syscalls as sc
from kernel.cgroups import CgroupDriver
from kernel.errors import KernelError, NotFound, NotSupported, from_oserror
from kernel.ubc.limits import NUMFILE_HOST_CAP, RESTART, Limits
from kernel.ubc.values import PAGE, format_cpulist, parse_cpulist

if TYPE_CHECKING:
    from kernel.runtime import StartContext

PERIOD_US = 100_000
CLONE_NEWIPC = 0x08000000


@dataclass(frozen=True)
class Write:
    controller: str
    file: str
    value: str
    inner: bool = False
    optional: bool = False  # skipped when the file is absent (v1 memsw without swap accounting)


@dataclass
class Applied:
    """What `apply` did: limits in force now, limits that wait for a restart, limits it could not set."""

    live: list[str] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def choose_cpus(limits: Limits, host: Sequence[int], ctid: int) -> list[int]:
    """The CPUs a VPS may run on: `cpumask` ∩ host, then `cpus` of them starting at a CTID-based
    offset (so one-CPU VPSs do not all land on CPU 0)."""
    allowed = [c for c in host if not limits.cpumask or c in parse_cpulist(limits.cpumask)]
    if not allowed:
        raise NotSupported(f"cpumask {limits.cpumask!r} has no CPU of this node")
    if not limits.cpus or limits.cpus >= len(allowed):
        return allowed
    start = ctid % len(allowed)
    return sorted((allowed * 2)[start:start + limits.cpus])


def cpu_shares(cpuunits: int) -> int:
    """OpenVZ cpuunits (default 1000) → v1 cpu.shares (default 1024)."""
    return max(2, cpuunits * 1024 // 1000) if cpuunits else 1024


def cpu_weight(cpuunits: int) -> int:
    """OpenVZ cpuunits (default 1000) → v2 cpu.weight (default 100, 1..10000)."""
    return min(10000, max(1, cpuunits // 10)) if cpuunits else 100


def plan(version: int, limits: Limits, *, cpus: Sequence[int], host_cpus: Sequence[int],
         device: str | None) -> list[Write]:
    """The cgroup writes for `limits`, in an order every intermediate state accepts."""
    quota = limits.cpu_quota_percent() * PERIOD_US // 100
    cpulist, hostlist = format_cpulist(list(cpus)), format_cpulist(list(host_cpus))
    if version == 1:
        memsw = limits.ram + limits.swap if limits.ram and limits.swap else -1
        writes = [
            # memsw ≥ memory at every moment: lift memsw, set memory, then the final memsw.
            Write("memory", "memory.memsw.limit_in_bytes", "-1", optional=True),
            Write("memory", "memory.limit_in_bytes", str(limits.ram or -1)),
            Write("memory", "memory.memsw.limit_in_bytes", str(memsw), optional=True),
            Write("pids", "pids.max", str(limits.numproc or "max")),
            Write("cpu", "cpu.shares", str(cpu_shares(limits.cpuunits))),
            Write("cpu", "cpu.cfs_period_us", str(PERIOD_US)),
            Write("cpu", "cpu.cfs_quota_us", str(quota or -1)),
            # A v1 child's cpuset must stay inside its parent's: widen outer, set inner, narrow outer.
            Write("cpuset", "cpuset.cpus", hostlist),
            Write("cpuset", "cpuset.cpus", cpulist, inner=True),
            Write("cpuset", "cpuset.cpus", cpulist),
        ]
        if device:
            # v1 blk-throttle is not hierarchical: the limit goes where the VPS's tasks are (the
            # inner cgroup; nothing of v1 is delegated, so the VPS still cannot write it).
            for op in ("read", "write"):
                for kind, value in (("bps", limits.iolimit), ("iops", limits.iopslimit)):
                    writes.append(Write("blkio", f"blkio.throttle.{op}_{kind}_device", f"{device} {value}", inner=True))
        return writes
    writes = [
        Write("memory", "memory.max", str(limits.ram or "max")),
        Write("memory", "memory.swap.max", str(limits.swap or "max"), optional=True),
        Write("pids", "pids.max", str(limits.numproc or "max")),
        Write("cpu", "cpu.weight", str(cpu_weight(limits.cpuunits))),
        Write("cpu", "cpu.max", f"{quota or 'max'} {PERIOD_US}"),
        Write("cpuset", "cpuset.cpus", cpulist),
    ]
    if device:
        bps, iops = limits.iolimit or "max", limits.iopslimit or "max"
        writes.append(Write("io", "io.max", f"{device} rbps={bps} wbps={bps} riops={iops} wiops={iops}"))
    return writes


def fields_of(file: str) -> frozenset[str]:
    """The `Limits` fields a cgroup file carries. Fields sharing a file are written together:
    v1's memsw holds ram + swap; the CPU quota is cpulimit capped by cpus; the cpuset is cpus in cpumask."""
    if file in ("cpu.shares", "cpu.weight"):
        return frozenset({"cpuunits"})
    for prefix, fields in (("memory.", {"ram", "swap"}), ("pids.", {"numproc"}), ("cpu.", {"cpulimit", "cpus"}),
                           ("cpuset.", {"cpus", "cpumask"}), ("blkio.", {"iolimit", "iopslimit"}),
                           ("io.", {"iolimit", "iopslimit"})):
        if file.startswith(prefix):
            return frozenset(fields)
    raise ValueError(f"no Limits field for {file}")


def host_cpus(driver: CgroupDriver) -> list[int]:
    """CPUs the VPSs' parent cgroup may use."""
    top = driver.top_dir("cpuset")
    name = "cpuset.effective_cpus" if driver.version == 1 else "cpuset.cpus.effective"
    for path in (os.path.join(top, name), os.path.join(os.path.dirname(top), name)):
        with contextlib.suppress(KernelError):
            return parse_cpulist(driver.fs.read(path))
    return sorted(os.sched_getaffinity(0))


def backing_device(path: str, mountinfo: str | None = None) -> str | None:
    """"MAJ:MIN" of the block device holding `path`, or None (tmpfs, overlay on no device...)."""
    if mountinfo is None:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            mountinfo = fh.read()
    real = os.path.realpath(path)
    best: tuple[int, str, str] | None = None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 2:
            continue
        point = fields[4].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), fields[2], rfields[1])
    if best is None:
        return None
    devno, source = best[1], best[2]
    if not devno.startswith("0:"):
        return devno
    if source.startswith("/dev/"):
        with contextlib.suppress(OSError):
            rdev = os.stat(source).st_rdev
            if rdev:
                return f"{os.major(rdev)}:{os.minor(rdev)}"
    return None


def _write_all(driver: CgroupDriver, ctid: int, writes: Sequence[Write], done: Applied) -> None:
    for w in writes:
        try:
            directory = driver.controller_dir(ctid, w.controller, inner=w.inner)
        except KernelError as exc:
            done.skipped[w.file] = str(exc)
            continue
        try:
            driver.fs.write(os.path.join(directory, w.file), w.value + "\n")
        except NotFound:
            if not w.optional:
                raise
            done.skipped[w.file] = "not provided by this kernel"


def _set_nofile(pids: Sequence[int], numfile: int, done: Applied) -> None:
    value = numfile or NUMFILE_HOST_CAP
    for pid in pids:
        try:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (value, value))
        except ProcessLookupError:
            continue
        except (PermissionError, ValueError):
            # Raising a hard limit needs CAP_SYS_RESOURCE; processes started later get the new one.
            if "numfile" not in done.restart:
                done.restart.append("numfile")


def _set_ioprio(pids: Sequence[int], level: int) -> None:
    """Best-effort class at `level` for each of the VPS's processes (a syscall, not an ionice run per start)."""
    value = sc.IOPRIO_CLASS_BE << sc.IOPRIO_CLASS_SHIFT | level
    for pid in pids:
        with contextlib.suppress(NotFound):  # ended meanwhile
            sc.ioprio_set(pid, value)


def _ns_root(map_path: str) -> int:
    """The host id that id 0 of a user namespace maps to."""
    with open(map_path, encoding="ascii") as fh:
        for line in fh:
            inside, outside, _ = line.split()
            if inside == "0":
                return int(outside)
    raise NotSupported(f"{map_path}: no mapping for root")


def set_ipc_limits(init_pid: int, shm_bytes: int) -> None:
    """kernel.shmmax/shmall in the VPS's IPC namespace (a default: the VPS root may change them)."""
    if not shm_bytes:
        return
    # The IPC sysctls of a namespace are writable by its user namespace's root (or with
    # CAP_SYS_RESOURCE, which root lacks on some hosts): the child writes as the VPS's root uid.
    uid, gid = (_ns_root(f"/proc/{init_pid}/{m}_map") for m in ("uid", "gid"))
    fd = os.open(f"/proc/{init_pid}/ns/ipc", os.O_RDONLY | os.O_CLOEXEC)
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the forked child only
            code = 1
            try:
                sc.setns(fd, CLONE_NEWIPC)
                os.setgroups([])
                os.setresgid(gid, gid, gid)
                os.setresuid(uid, uid, uid)
                for name, value in (("shmmax", shm_bytes), ("shmall", shm_bytes // PAGE)):
                    with open(f"/proc/sys/kernel/{name}", "w", encoding="ascii") as fh:
                        fh.write(f"{value}\n")
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
    finally:
        os.close(fd)
    if os.waitstatus_to_exitcode(status) != 0:
        raise from_oserror(PermissionError(1, "cannot set IPC limits"), f"CT IPC namespace of {init_pid}")


def apply(driver: CgroupDriver, ctid: int, limits: Limits, *, init_pid: int | None = None,
          device: str | None = None, previous: Limits | None = None,
          only: Collection[str] | None = None) -> Applied:
    """Set `limits` on VPS `ctid` (its cgroups exist). At start pass the waiting `init_pid`;
    live, pass `previous` so restart-only changes are reported, not silently dropped.
    `only`: set just these fields (and those sharing a cgroup file with them, see `fields_of`),
    leaving the rest as they are in the kernel (`vzctl set` of a few parameters)."""
    done = Applied()
    wanted = set(only) if only is not None else None
    host = host_cpus(driver)
    writes = plan(driver.version, limits, cpus=choose_cpus(limits, host, ctid), host_cpus=host, device=device)
    if wanted is not None:
        writes = [w for w in writes if fields_of(w.file) & wanted]
    _write_all(driver, ctid, writes, done)
    io = wanted is None or bool(wanted & {"iolimit", "iopslimit"})
    if io and (limits.iolimit or limits.iopslimit) and not device:
        done.skipped["iolimit"] = "no block device backs the VPS"
    pids = sorted(set(driver.pids(ctid)) | ({init_pid} if init_pid else set()))
    if wanted is None or "numfile" in wanted:
        _set_nofile(pids, limits.numfile, done)
    if wanted is None or "ioprio" in wanted:
        _set_ioprio(pids, limits.ioprio)
    if init_pid and (wanted is None or wanted & {"shmpages", "ram"}):
        set_ipc_limits(init_pid, limits.shm_bytes())
    changed = limits.changed(previous) if previous else []
    if wanted is not None:
        changed = [n for n in changed if n in wanted]
    done.restart.extend(n for n in changed if n in RESTART and n not in done.restart)
    done.live = [n for n in (changed or []) if n not in done.restart]
    return done


def limits_hook(driver: CgroupDriver, lookup: Callable[[int], Limits]) -> Callable[[StartContext], None]:
    """The runtime's "limits" stage: `Runtime(config, hooks={"limits": [limits_hook(rt_driver, lookup)]})`.

    `lookup(ctid)` returns the VPS's limits. Nothing to undo: the cgroups carrying
    the limits are removed by the runtime's own revert step.
    """

    def hook(ctx: StartContext) -> None:
        ctid = ctx.record.ctid
        apply(driver, ctid, lookup(ctid), init_pid=ctx.init_pid, device=backing_device(ctx.volume))

    return hook
