"""The VPS lifecycle: create, start, stop, status, destroy, exec, freeze/thaw.

`Runtime` is what the node worker, the supervisor and the vzctl CLI call.
Every state-changing verb holds the VPS's lock (flock on a file under the
node's run directory), shared by every client on the node; a second change
while one runs raises `Busy` at once (vzctl's exit code 9).

Start is one pipeline with hook points in a fixed order, and one reverter
across all of it::

    volume   → the root directory is ready (storage drivers mount it here)
    (namespaces created: the future init waits in them, ids mapped, root idmapped)
    network  → the network namespace is prepared (veth moved in, addresses)
    files    → files inside are written safely (hostname, hosts, resolv.conf...)
    limits   → limits applied to the outer cgroup (beancounters)
    (init executed as PID 1)
    started  → after init runs (announce, start accounting)

A hook is any callable taking a `StartContext`; it registers its own undo
with `ctx.revert.add(...)`. If any step fails, everything done so far is
undone, newest first: no half-made cgroup, mount, namespace or process.

Volumes come from `kernel.storage` (`Runtime(..., storage=)`; by default the
node's storage.json, or one `dir` pool at the private directory): create makes
the volume, the first `volume` step activates it, stop deactivates it, destroy
removes it. With `network=` (a `kernel.net.network.Network`), its start and
files hooks run first in their stages, stop/collect release the VPS's host-side
network and destroy forgets it (docs/runtime.md, "Wiring").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from kernel import cgroups, enter, faults, helper, running, spawn, statefile, vpsfiles
from kernel import syscalls as sc
from kernel.config import NodeConfig, check_ctid
from kernel.errors import AlreadyExists, Busy, InvalidArgument, KernelError, NotFound
from kernel.idrange import IdAllocator, IdRange
from kernel.registry import Record, Registry
from kernel.reverter import Reverter
from kernel.rootfs import RootfsOptions
from kernel.storage.base import Limits as DiskLimits
from kernel.storage.volumes import Storage
from kernel.templates import TemplateCache

STAGES = ("volume", "network", "files", "limits", "started")
NODE_LXCFS = ""  # Runtime(lxcfs=): the node's own mount, NodeConfig.lxcfs_mount
MOUNT_POINTS = ("/proc", "/sys", "/dev")
UNSAFE_ENV = "CTPANEL_UNSAFE_TESTING"
STAGED = ".staged"  # suffix of an init's state files until init runs


@dataclass(frozen=True)
class Defences:
    """Test-only switches for negative controls; refused unless CTPANEL_UNSAFE_TESTING=1."""

    seccomp: bool = True
    masks: bool = True

    def check(self) -> None:
        if not (self.seccomp and self.masks) and os.environ.get(UNSAFE_ENV) != "1":
            raise InvalidArgument("defences can only be switched off by the test suite")


@dataclass(frozen=True)
class CreateSpec:
    ctid: int
    template: str
    hostname: str = ""
    onboot: bool = False
    panel_managed: bool = False
    layout: str | None = None  # storage pool name; None: the node's default pool
    limits: DiskLimits = field(default_factory=DiskLimits)
    adopt: bool = False  # register the volume the storage already holds for this CTID (a restore made it)


@dataclass(frozen=True)
class StartOptions:
    # None: /dev/console is /dev/null; "pty": a new pty of the VPS's own devpts whose master is
    # returned as Status.console_fd (the supervisor keeps it); else a host tty path to bind.
    console: str | None = None
    timeout: float = 10.0
    devpts_max: int = 1024
    defences: Defences = field(default_factory=Defences)


@dataclass(frozen=True)
class Status:
    ctid: int
    exists: bool
    mounted: bool
    running: bool
    frozen: bool = False
    init_pid: int | None = None
    console_fd: int | None = None  # set by a start with console="pty": the caller must close it

    def vzctl_line(self) -> str:
        """OpenVZ's `vzctl status` line."""
        words = [
            "exist" if self.exists else "deleted",
            "mounted" if self.mounted else "unmounted",
            "running" if self.running else "down",
        ]
        return f"CTID {self.ctid} " + " ".join(words)


@dataclass(frozen=True)
class InitExit:
    """Why a VPS's init ended: "reboot" / "poweroff" (reboot(2) inside, reported by the kernel
    as SIGHUP / SIGINT), "killed", "exited", or "unknown" when we were not its parent."""

    ctid: int
    reason: str
    status: int | None


def exit_reason(status: int | None) -> str:
    if status is None:
        return "unknown"
    if os.WIFSIGNALED(status):
        return {signal.SIGHUP: "reboot", signal.SIGINT: "poweroff"}.get(os.WTERMSIG(status), "killed")
    return "exited"


@dataclass
class StartContext:
    """What start hooks see. `init_pid` and `ns_dir` are set from the network stage on."""

    record: Record
    config: NodeConfig
    volume: str
    cgroup_paths: cgroups.CgroupPaths
    revert: Reverter
    options: StartOptions
    init_pid: int = 0
    ns_dir: str = ""
    # (host file, path inside) the pre-init binds read-only while it builds the mount tree (node
    # file servers' files, added by "volume" hooks); one it cannot open is left out
    binds: list[tuple[str, str]] = field(default_factory=list)


Hook = Callable[[StartContext], None]


class NetworkHooks(Protocol):
    """What the runtime calls of `kernel.net.network.Network` (not imported: pyroute2 stays optional)."""

    def start_hook(self, ctx: StartContext) -> None: ...
    def files_hook(self, ctx: StartContext) -> None: ...
    def release(self, ctid: int) -> None: ...
    def forget(self, ctid: int) -> None: ...


def _signal(name: str) -> int:
    """A signal by name, including systemd's real-time ones ("SIGRTMIN+4": poweroff)."""
    base, plus, offset = name.partition("+")
    if base == "SIGRTMIN" and plus and offset.isdigit() and signal.SIGRTMIN + int(offset) <= signal.SIGRTMAX:
        return int(signal.SIGRTMIN) + int(offset)
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise InvalidArgument(f"unknown signal {name!r}") from None


class Runtime:
    """One node's VPS runtime. Cheap to construct; holds no per-VPS state in memory."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        cgroup_driver: cgroups.CgroupDriver | None = None,
        hooks: Mapping[str, Sequence[Hook]] | None = None,
        lxcfs: str | None = NODE_LXCFS,
        storage: Storage | None = None,
        network: NetworkHooks | None = None,
        lock_wait: float = 0.0,
    ) -> None:
        """`lxcfs`: where lxcfs is mounted (default: the node's own, `config.lxcfs_mount`; None:
        never); used only while an lxcfs is actually mounted there.

        `lock_wait`: seconds a change waits for the per-VPS lock held by another client before
        `Busy` — 0 fails at once, as vzctl does; the node's daemons wait a bounded time, since
        their callers are queued operations that should not fail on a brief overlap.

        `storage.setup()` is the caller's (worker start, set-up): btrfs pools switch quota on.
        """
        self.config = config
        self.lxcfs = config.lxcfs_mount if lxcfs == NODE_LXCFS else lxcfs
        self.lock_wait = lock_wait
        self.cgroups = cgroup_driver or cgroups.detect(config.cgroup_prefix)
        self.registry = Registry(config)
        self.ids = IdAllocator(config)
        self.templates = storage.templates if storage else TemplateCache(config)
        self.storage = storage or Storage(config, templates=self.templates)
        self.network = network
        unknown = set(hooks or {}) - set(STAGES)
        if unknown:
            raise InvalidArgument(f"unknown start stages: {sorted(unknown)}")
        self.hooks: dict[str, list[Hook]] = {s: list((hooks or {}).get(s, ())) for s in STAGES}
        if network is not None:
            self.hooks["network"].insert(0, network.start_hook)
            self.hooks["files"].insert(0, network.files_hook)
        for directory in (config.run_dir, config.private_dir):
            os.chmod(statefile.ensure_dir(directory, 0o700), 0o700)  # VPS roots: host users keep out

    # -- paths and locks ---------------------------------------------------------------------
    def volume_path(self, ctid: int) -> str:
        return os.path.join(self.config.private_dir, str(check_ctid(ctid)))

    def root_path(self, ctid: int) -> str:
        """Where `mount` shows the VPS's root on the host (OpenVZ's /vz/root/CTID)."""
        return os.path.join(self.config.path("root"), str(check_ctid(ctid)))

    def _state_path(self, ctid: int) -> str:
        return os.path.join(self.config.run_dir, f"{ctid}.json")

    def _init_path(self, ctid: int) -> str:
        return os.path.join(self.config.run_dir, f"{ctid}.init")

    def _forget_init(self, ctid: int) -> None:
        for path in (self._state_path(ctid), self._init_path(ctid)):
            statefile.remove(path)
            statefile.remove(path + STAGED)

    def _stage_state(self, ctid: int, pid: int, record: Record) -> None:
        """The init's state files under their STAGED names, written while the future init builds
        its tree; renamed once init runs (before, the pre-init's mount namespace still holds the
        host's tree: nothing may find it as the VPS's init). Not durable: a host reboot ends the
        init anyway (running.py reads them so). The start time is the fork's: exec keeps it."""
        starttime = running.starttime(pid)
        statefile.write_json(self._state_path(ctid) + STAGED,
                             {"init_pid": pid, "starttime": starttime, "started": time.time()}, durable=False)
        statefile.write_text(self._init_path(ctid) + STAGED, running.init_text(pid, starttime or 0, record.cgroups),
                             durable=False)  # vzctl exec's plain-text copy (running.read_init)

    def _stage_dir(self, ctid: int) -> str:
        return os.path.join(self.config.run_dir, f"{ctid}.root")

    @contextlib.contextmanager
    def lock(self, ctid: int, *, wait: bool = False, now: bool = False) -> Iterator[None]:
        """The per-VPS lock every client takes for a change; `Busy` if held (after `lock_wait`)
        and not `wait`; with `now`, `Busy` at once (a background refresh skips a VPS in use)."""
        path = os.path.join(self.config.run_dir, f"{check_ctid(ctid)}.lock")
        with statefile.flocked(path, wait=0 if now else wait or self.lock_wait):
            yield

    # -- create / destroy ------------------------------------------------------------------
    def create(self, spec: CreateSpec) -> Record:
        """Allocate ids, make the volume from the template in its pool (with its disk limits),
        register the VPS. With `spec.adopt`, the storage's existing volume is used as it is."""
        check_ctid(spec.ctid)
        if spec.hostname:
            vpsfiles.check_hostname(spec.hostname)
        with self.lock(spec.ctid), Reverter() as revert:
            if self.registry.find(spec.ctid) is not None:
                raise AlreadyExists(f"CT {spec.ctid} already exists")
            template = self.templates.verify(spec.template)
            fresh_ids = self.ids.lookup(spec.ctid) is None
            ids = self.ids.allocate(spec.ctid)
            if fresh_ids:
                revert.add(lambda: self.ids.release(spec.ctid), "release ids")
            faults.point("create.ids")
            if spec.adopt:
                volume = self.storage.activate(spec.ctid)
            else:
                # An existing volume (a crashed create's) is refused as AlreadyExists; destroy removes it.
                volume = self.storage.create(spec.ctid, spec.template, spec.limits, spec.layout)
                revert.add(lambda: self.storage.destroy(spec.ctid), "destroy volume")
            faults.point("create.volume")
            if spec.hostname:
                with vpsfiles.VpsRoot(volume) as root:
                    vpsfiles.write_hostname(root, spec.hostname)
                    vpsfiles.write_hosts(root, spec.hostname)
            faults.point("create.files")
            paths = self.cgroups.paths(spec.ctid)
            record = Record(
                ctid=spec.ctid,
                node=self.config.node,
                id_start=ids.start,
                id_size=ids.size,
                volume=volume,
                template=spec.template,
                hostname=spec.hostname,
                cgroups=paths.outer,
                onboot=spec.onboot,
                panel_managed=spec.panel_managed,
                init=template.meta.init,
                halt_signal=template.meta.halt_signal,
                reboot_signal=template.meta.reboot_signal,
            )
            self.registry.add(record)
            revert.add(lambda: self.registry.remove(spec.ctid), "unregister")
            faults.point("create.registry")
            revert.success()
            return record

    def destroy(self, ctid: int) -> None:
        """Remove a stopped VPS: volume, cgroups, id range, registry entry. Idempotent."""
        with self.lock(ctid):
            if self._running_pid(ctid):
                raise Busy(f"CT {ctid} is running")
            record = self.registry.find(ctid)
            self._umount_root(ctid)
            self.cgroups.remove(ctid)
            if self.network is not None:
                self.network.forget(ctid)
            self.storage.destroy(ctid)
            volume = record.volume if record else self.volume_path(ctid)
            if os.path.lexists(volume):  # made before storage pools (or a crashed dir create)
                shutil.rmtree(volume)
            self.ids.release(ctid)
            self._forget_init(ctid)
            _rmdir(self._stage_dir(ctid))
            self.registry.remove(ctid)

    def set_hostname(self, ctid: int, hostname: str) -> Record:
        """Record and write the hostname; a running VPS's UTS name changes at once too."""
        vpsfiles.check_hostname(hostname)
        with self.lock(ctid):
            record = replace(self.registry.get(ctid), hostname=hostname)
            with vpsfiles.VpsRoot(record.volume) as root:
                vpsfiles.write_hostname(root, hostname)
                vpsfiles.write_hosts(root, hostname)
            self.registry.put(record)
            if self._running_pid(ctid):
                with self._init_pidfd(ctid) as pidfd:
                    enter.set_uts_name(pidfd, hostname)
            return record

    # -- status ------------------------------------------------------------------------------
    def _running_pid(self, ctid: int) -> int | None:
        return running.running_pid(self._state_path(ctid))

    def status(self, ctid: int) -> Status:
        check_ctid(ctid)
        record = self.registry.find(ctid)
        pid = self._running_pid(ctid)
        frozen = False
        if pid and "freeze" in self.cgroups.capabilities:
            with contextlib.suppress(KernelError):
                frozen = self.cgroups.frozen(ctid)
        return Status(
            ctid=ctid,
            exists=record is not None,
            mounted=pid is not None or self._root_mounted(ctid),
            running=pid is not None,
            frozen=frozen,
            init_pid=pid,
        )

    # -- mount / umount ------------------------------------------------------------------------
    def _root_mounted(self, ctid: int) -> bool:
        target = self.root_path(ctid)
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            return any(line.split()[4] == target for line in fh)

    def mount(self, ctid: int) -> Status:
        """`vzctl mount`: show the VPS's root at `root_path(ctid)`, idmapped into its host id
        range, so host root sees the VPS's root-owned files as the unprivileged range (and
        cannot create files there as host root). Idempotent; independent of running."""
        with self.lock(ctid), Reverter() as revert:
            record = self.registry.get(ctid)
            if self._root_mounted(ctid):
                return self.status(ctid)
            ctx = StartContext(
                record=record,
                config=self.config,
                volume=record.volume,
                cgroup_paths=self.cgroups.paths(ctid),
                revert=revert,
                options=StartOptions(),
            )
            self._activate(ctx)
            self._run_hooks("volume", ctx)
            statefile.ensure_dir(self.config.path("root"), 0o700)
            target = self.root_path(ctid)
            with contextlib.suppress(FileExistsError):
                os.mkdir(target, 0o700)
            revert.add(lambda: _rmdir(target), "remove mount point")
            userns = spawn.user_namespace(IdRange(record.id_start, record.id_size))
            try:
                mount_fd = spawn.idmapped_mount(ctx.volume, userns)
            finally:
                os.close(userns)
            try:
                target_fd = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    sc.attach(mount_fd, target_fd)
                finally:
                    os.close(target_fd)
            finally:
                os.close(mount_fd)
            revert.success()
            return self.status(ctid)

    def umount(self, ctid: int) -> Status:
        """`vzctl umount`: remove the host view made by `mount` (idempotent)."""
        with self.lock(ctid):
            self._umount_root(ctid)
            return self.status(ctid)

    def _umount_root(self, ctid: int) -> None:
        target = self.root_path(ctid)
        while self._root_mounted(ctid):
            sc.umount2(target, sc.MNT_DETACH)
        _rmdir(target)

    def set_onboot(self, ctid: int, onboot: bool) -> Record:
        """`vzctl set --onboot yes|no --save`: the supervisor starts onboot VPSs."""
        with self.lock(ctid):
            record = replace(self.registry.get(ctid), onboot=onboot)
            self.registry.put(record)
            return record

    def reconcile(self) -> list[str]:
        """Remove what crashed operations left behind, on this node's own objects only.

        Cgroups under this node's prefix whose CTID is not running are killed and
        removed, stale runtime state and staging directories of stopped VPSs deleted, id
        ranges of CTIDs this node no longer registers released. Running VPSs are untouched.
        Returns what was done.
        """
        done: list[str] = []
        known = set(self.registry.ctids())
        seen: set[int] = set()
        for mount in self.cgroups.hierarchies().values():
            with contextlib.suppress(OSError):
                seen |= {int(n) for n in os.listdir(os.path.join(mount, self.cgroups.prefix)) if n.isdigit()}
        for name in os.listdir(self.config.run_dir):
            stem = name.split(".", 1)[0]
            if stem.isdigit() and not name.endswith(".lock"):
                seen.add(int(stem))
        for ctid in sorted(seen):
            try:
                with self.lock(ctid):
                    if self._running_pid(ctid):
                        continue
                    if self.cgroups.exists(ctid):
                        done.append(f"CT {ctid}: removed stale cgroups")
                    if os.path.exists(self._state_path(ctid)):
                        done.append(f"CT {ctid}: removed stale runtime state")
                    self._cleanup(ctid)
            except Busy:
                continue  # an operation is running on it right now
        for ctid in sorted(set(self.ids.owned()) - known):
            with contextlib.suppress(Busy), self.lock(ctid):
                if self.registry.find(ctid) is None:
                    self.ids.release(ctid)
                    done.append(f"CT {ctid}: released unused id range")
        return done

    def list(self) -> list[Status]:
        return [self.status(ctid) for ctid in self.registry.ctids()]

    # -- start ---------------------------------------------------------------------------------
    def start(self, ctid: int, options: StartOptions | None = None) -> Status:
        """Ensure the VPS runs; returns at once if it already does."""
        options = options or StartOptions()
        options.defences.check()
        with self.lock(ctid):
            record = self.registry.get(ctid)
            if self._running_pid(ctid):
                return self.status(ctid)
            return self._start(record, options)

    def restart(self, ctid: int, options: StartOptions | None = None, *, timeout: float = 30.0) -> Status:
        """Stop (halt signal, then kill after `timeout`) and start again, under one lock."""
        options = options or StartOptions()
        options.defences.check()
        with self.lock(ctid):
            record = self.registry.get(ctid)
            pid = self._running_pid(ctid)
            if pid:
                self._stop(record, pid, fast=False, timeout=timeout)
            self._cleanup(ctid)
            return self._start(record, options)

    def _run_hooks(self, stage: str, ctx: StartContext) -> None:
        for hook in self.hooks[stage]:
            hook(ctx)
        faults.point(f"start.{stage}")

    def _activate(self, ctx: StartContext) -> None:
        """The built-in first `volume` step (idempotent: a stopped VPS may stay active, no undo)."""
        if self.storage.find(ctx.record.ctid) is not None:
            ctx.volume = self.storage.activate(ctx.record.ctid)

    def _start(self, record: Record, options: StartOptions) -> Status:
        """Run the start pipeline; the status of the running VPS (with its console master, if any),
        made here rather than read back (a status read costs a registry parse: ~0.3 ms of a start)."""
        ctid = record.ctid
        with Reverter() as revert:
            starting = spawn.Starting(ctid, options.timeout)  # C1's fork overlaps what follows: it waits for begin()
            revert.add(starting.abort, "kill init")
            ctx = StartContext(
                record=record,
                config=self.config,
                volume=record.volume,
                cgroup_paths=self.cgroups.paths(ctid),
                revert=revert,
                options=options,
            )
            self._activate(ctx)
            self._run_hooks("volume", ctx)
            if not os.path.isdir(ctx.volume):
                raise NotFound(f"CT {ctid}: volume is missing", path=ctx.volume)
            with vpsfiles.VpsRoot(ctx.volume) as root:
                for point in MOUNT_POINTS:  # a customer may have removed one; a symlink fails later
                    root.makedirs(point)
            stage = self._stage_dir(ctid)
            spec = spawn.InitSpec(
                ctid=ctid,
                volume=ctx.volume,
                ids=IdRange(record.id_start, record.id_size),
                stage_dir=stage,
                hostname=record.hostname or f"ct{ctid}",
                init=record.init,
                cgroup_procs=tuple(
                    os.path.join(p, "cgroup.procs") for p in ctx.cgroup_paths.inner.values()
                ),
                rootfs=RootfsOptions(
                    masks=options.defences.masks,
                    cgroup2="unified" in ctx.cgroup_paths.inner,
                    devpts_max=options.devpts_max,
                ),
                seccomp=options.defences.seccomp,
                console=options.console,
                lxcfs=self.lxcfs if self.lxcfs and _is_lxcfs(self.lxcfs) else None,
                binds=tuple(ctx.binds),
                timeout=options.timeout,
            )
            self.cgroups.kill(ctid)  # leftovers of a crash; no-op normally
            ctx.cgroup_paths = self.cgroups.ensure(ctid)
            revert.add(lambda: self._remove_cgroups(ctid), "remove cgroups")
            faults.point("start.cgroups")
            if "delegate" in self.cgroups.capabilities:
                self.cgroups.delegate(ctid, record.id_start, record.id_start)
            with contextlib.suppress(FileExistsError):
                os.mkdir(stage, 0o700)
            revert.add(lambda: _rmdir(stage), "remove staging directory")
            starting.begin(spec)
            faults.point("start.spawn")
            ctx.init_pid = starting.pid
            ctx.ns_dir = starting.ns_dir
            revert.add(lambda: self._forget_init(ctid), "forget init")
            self._stage_state(ctid, starting.pid, record)  # while C2 builds its tree
            self._run_hooks("network", ctx)
            self._write_files(ctx)
            self._run_hooks("files", ctx)
            self._run_hooks("limits", ctx)
            starting.exec_init()
            for path in (self._state_path(ctid), self._init_path(ctid)):
                os.rename(path + STAGED, path)
            self._run_hooks("started", ctx)
            console = starting.take_console()
            starting.close()
            revert.success()
            return Status(ctid=ctid, exists=True, mounted=True, running=True, init_pid=starting.pid,
                          console_fd=console)

    def _write_files(self, ctx: StartContext) -> None:
        if ctx.record.hostname:
            with vpsfiles.VpsRoot(ctx.volume) as root:
                vpsfiles.write_hostname(root, ctx.record.hostname)
                vpsfiles.write_hosts(root, ctx.record.hostname)

    def _remove_cgroups(self, ctid: int) -> None:
        self.cgroups.kill(ctid)
        self.cgroups.remove(ctid)

    # -- stop ------------------------------------------------------------------------------------
    def stop(self, ctid: int, *, fast: bool = False, timeout: float = 30.0) -> Status:
        """Ensure the VPS is stopped: halt signal to init, then after `timeout` kill everything.

        `fast` kills at once (`vzctl stop --fast`). Returns when no process of the VPS is left.
        """
        with self.lock(ctid):
            record = self.registry.get(ctid)
            pid = self._running_pid(ctid)
            if pid:
                self._stop(record, pid, fast=fast, timeout=timeout)
            self._cleanup(ctid)
            return self.status(ctid)

    def _stop(self, record: Record, pid: int, *, fast: bool, timeout: float) -> None:
        ctid = record.ctid
        try:
            pidfd = sc.pidfd_open(pid)
        except NotFound:
            return
        try:
            if "freeze" in self.cgroups.capabilities:
                with contextlib.suppress(KernelError):
                    if self.cgroups.frozen(ctid):
                        self.cgroups.thaw(ctid)
            exited = False
            if not fast:
                with contextlib.suppress(NotFound):
                    sc.pidfd_send_signal(pidfd, _signal(record.halt_signal))
                exited = running.pidfd_exited(pidfd, timeout)
            if not exited:
                self.cgroups.kill(ctid)
                # A session's helper outside the cgroup reaps its killed command, and init finishes.
                # One that does not (stopped, or busy) is killed; its command, if it comes to us, is
                # reaped here, since the dying init waits for that (kernel/enter.py).
                if not running.pidfd_exited(pidfd, enter.HELPER_GRACE):
                    enter.kill_helpers(pid)
                deadline = time.monotonic() + 10.0
                while not (exited := running.pidfd_exited(pidfd, 0.05)) and time.monotonic() < deadline:
                    enter.reap_orphans()
            if not exited:  # never block in waitpid on an init that cannot finish its exit
                raise Busy(f"CT {ctid}: its init (PID {pid}) did not exit after everything was killed; "
                           f"{enter.unreaped_report()}")
        finally:
            os.close(pidfd)
        self._reap(ctid)

    def _reap(self, ctid: int) -> int | None:
        """Collect the recorded init's wait status if we are its parent (checked by start time,
        so a reused PID of another child is never reaped by mistake)."""
        try:
            state = statefile.read_json(self._state_path(ctid))
            pid = int(state["init_pid"])
        except (NotFound, ValueError, KeyError, TypeError):  # none, or emptied by a host crash
            return None
        fields = running.proc_stat(pid)
        if not fields or int(fields[19]) != state["starttime"] or int(fields[1]) != os.getpid():
            return None
        return spawn.reap(pid)

    def collect(self, ctid: int) -> InitExit | None:
        """After init exited by itself: reap it, say why, and remove what is left.

        None while init runs (or when no start was recorded). The supervisor calls this
        when an init's pidfd becomes readable and restarts the VPS on "reboot".
        """
        with self.lock(ctid):
            if self._running_pid(ctid) or not os.path.exists(self._state_path(ctid)):
                return None
            status = self._reap(ctid)
            self._cleanup(ctid)
            return InitExit(ctid, exit_reason(status), status)

    def _cleanup(self, ctid: int) -> None:
        self._reap(ctid)  # an init that exited on its own (poweroff inside)
        enter.reap_helpers(enter.HELPER_GRACE)  # exec helpers whose exit `exec` did not wait for
        self.cgroups.kill(ctid)
        self.cgroups.remove(ctid)
        self._forget_init(ctid)
        _rmdir(self._stage_dir(ctid))
        if self.network is not None:
            self.network.release(ctid)
        if self.storage.find(ctid) is not None:
            with contextlib.suppress(Busy):  # a host shell may sit inside the mount
                self.storage.deactivate(ctid)

    # -- freeze ------------------------------------------------------------------------------------
    def freeze(self, ctid: int) -> None:
        """`vzctl pause`: stop every process of the VPS in place (the kernel freezer)."""
        with self.lock(ctid):
            if not self._running_pid(ctid):
                raise NotFound(f"CT {ctid} is not running")
            self.cgroups.freeze(ctid)

    def thaw(self, ctid: int) -> None:
        with self.lock(ctid):
            if not self._running_pid(ctid):
                raise NotFound(f"CT {ctid} is not running")
            self.cgroups.thaw(ctid)

    @contextlib.contextmanager
    def quiesce(self, ctid: int) -> Iterator[None]:
        """Keep a running VPS frozen for the block, taking no lock: for a caller that already
        holds the VPS's lock (snapshots, backups: `functools.partial(rt.quiesce, ctid)` is a
        `kernel.storage.base.Quiesce`). A stopped or already paused VPS is left as it is."""
        if not self._running_pid(ctid) or self.cgroups.frozen(ctid):
            yield
            return
        self.cgroups.freeze(ctid)
        try:
            yield
        finally:
            self.cgroups.thaw(ctid)

    # -- exec ----------------------------------------------------------------------------------------
    def _refuse_frozen(self, ctid: int) -> None:
        """A process joining a frozen cgroup freezes too: exec would hang until thaw."""
        if "freeze" in self.cgroups.capabilities and self.cgroups.frozen(ctid):
            raise Busy(f"CT {ctid} is paused")

    @contextlib.contextmanager
    def _init_pidfd(self, ctid: int) -> Iterator[int]:
        pid = self._running_pid(ctid)
        if not pid:
            raise NotFound(f"CT {ctid} is not running")
        pidfd = sc.pidfd_open(pid)
        try:
            if self._running_pid(ctid) != pid:  # exited (and the PID reused) before pidfd_open
                raise NotFound(f"CT {ctid} is not running")
            yield pidfd
        finally:
            os.close(pidfd)

    def _inner_procs(self, ctid: int) -> list[str]:
        return [os.path.join(p, "cgroup.procs") for p in self.cgroups.paths(ctid).inner.values()]

    def spawn(
        self,
        ctid: int,
        argv: Sequence[str],
        *,
        tty: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: str = "/",
        use_seccomp: bool = True,
    ) -> enter.Attached:
        """Start `argv` inside the VPS and return at once (`vzctl exec`/`enter` relay its I/O).

        With `tty`, the command gets a new pty from the VPS's own devpts; the caller gets
        the master as `Attached.master`, never passing its own terminal in.
        """
        if not use_seccomp:
            Defences(seccomp=False).check()
        with self._init_pidfd(ctid) as pidfd:
            self._refuse_frozen(ctid)
            return enter.spawn_in(
                pidfd, self._inner_procs(ctid), argv, env=env, cwd=cwd, tty=tty, use_seccomp=use_seccomp,
                home_procs=helper.own_procs(self.cgroups.hierarchies()), spawner=spawn.start_helper,
            )

    def exec(
        self,
        ctid: int,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        use_seccomp: bool = True,
    ) -> enter.ExecResult:
        """Run `argv` inside the running VPS and capture its output (no lock: read-only)."""
        if not use_seccomp:
            Defences(seccomp=False).check()
        with self._init_pidfd(ctid) as pidfd:
            self._refuse_frozen(ctid)
            return enter.run_in(
                pidfd,
                self._inner_procs(ctid),
                argv,
                env=env,
                input=input,
                timeout=timeout,
                use_seccomp=use_seccomp,
                home_procs=helper.own_procs(self.cgroups.hierarchies()),
                spawner=spawn.start_helper,
            )


def _is_lxcfs(path: str) -> bool:
    """Whether a live server is mounted at `path` (the node's own lxcfs mount): ismount's lstat
    reaches the server, so a dead one's mount (ENOTCONN) reads as none and the VPS gets the real
    /proc files rather than a failed start. No mountinfo read: its size grows with the node's VPSs."""
    return os.path.ismount(path)


def _rmdir(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(path)
