"""A VPS's data on the node: reinstall, snapshots, backups and restore (protocol 1.1's data tasks).

Where things live: snapshots in the VPS's storage pool (`kernel.storage`,
drivers with the `snapshots` capability), backups in the node's backup
directory (`<backup_dir>/<ctid>/<id>/`, `kernel.storage.backup`). Every
report of these tasks lists both in its facts (`snapshots`, `backups`) so the
panel shows what the node really has.

Redelivery: reinstall and restore replace the volume in steps (stop, replace,
start), so they leave a marker `<state_root>/vpsdata/<ctid>.json` naming the
operation; a second delivery of an operation whose volume was already
replaced does not replace it again, it only finishes the start. A backup
records its operation id in backup.json (`config.operation`), and a second
delivery finds it instead of taking another. Snapshot create and the deletes
are ensure-operations (an existing snapshot, a missing one: done).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from kernel import credentials, statefile, vpsfiles
from kernel.errors import NotFound
from kernel.runtime import Runtime
from kernel.storage import backup as backups
from worker import protocol, quotas, vps
from worker.config import NodeConfig
from worker.execution import OperationContext
from worker.supervisor.client import try_request

PROGRESS_SECONDS = 5.0


def _backups(rt: Runtime) -> backups.Backups:
    return backups.Backups(rt.storage)


def data_facts(rt: Runtime, ctid: int) -> dict[str, Any]:
    """The VPS's snapshots (oldest first; empty when its pool has none) and backups (oldest first)."""
    snapshots: list[dict[str, Any]] = []
    volume = rt.storage.find(ctid)
    if volume is not None and rt.storage.pool(volume.pool).capabilities.snapshots:
        snapshots = [{"name": s.name, "created": s.created} for s in rt.storage.snapshot_list(ctid)]
    found = [{"id": b.id, "created": b.created, "size": b.size} for b in _backups(rt).list(ctid)]
    return {"snapshots": snapshots, "backups": found}


# -- power, through the supervisor when it runs (it parents inits and keeps consoles) ----------------
def _stop(rt: Runtime, ctid: int) -> None:
    if try_request(rt.config.state_root, "stop", ctid=ctid, fast=True) is None:
        rt.stop(ctid, fast=True)


def _start(rt: Runtime, ctid: int) -> None:
    if try_request(rt.config.state_root, "start", ctid=ctid) is None:
        rt.start(ctid)


# -- replacing the volume (reinstall, restore) ---------------------------------------------------------
def _marker(rt: Runtime, ctid: int) -> str:
    return os.path.join(rt.config.path("vpsdata"), f"{ctid}.json")


def _replaced_by(rt: Runtime, ctid: int) -> str:
    """The operation that last finished replacing this VPS's volume ('' when none is recorded)."""
    try:
        data = statefile.read_json(_marker(rt, ctid))
    except NotFound:
        return ""
    return str(data.get("operation", "")) if data.get("done") else ""


def _mark(rt: Runtime, ctid: int, operation_id: str, *, done: bool) -> None:
    statefile.ensure_dir(rt.config.path("vpsdata"))
    statefile.write_json(_marker(rt, ctid), {"operation": operation_id, "done": done})


def _replace_volume(rt: Runtime, context: OperationContext, request: protocol.VpsRequest,
                    make: Callable[[str | None], str], template: str) -> None:
    """Stop the VPS, swap its volume for `make(pool)`'s (same pool), record `template`, write the host name;
    CTID, id range, addresses, limits and the registry entry stay. Skipped on a redelivery that already did it."""
    ctid = request.ctid
    record = rt.registry.find(ctid)
    if record is None:
        raise NotFound(f"CT {ctid} does not exist on this node")
    if _replaced_by(rt, ctid) == request.operation_id:
        return
    context.progress("stop", 15)
    _stop(rt, ctid)
    _mark(rt, ctid, request.operation_id, done=False)
    context.progress("volume", 35)
    with rt.lock(ctid):
        volume = rt.storage.find(ctid)
        pool = volume.pool if volume is not None else None
        rt.storage.destroy(ctid)
        if volume is None and os.path.lexists(record.volume):  # a VPS made before storage pools
            shutil.rmtree(record.volume)
        root = make(pool)
        meta = rt.templates.verify(template).meta
        hostname = request.hostname or record.hostname
        rt.registry.put(replace(record, volume=root, template=template, hostname=hostname, init=meta.init,
                                halt_signal=meta.halt_signal, reboot_signal=meta.reboot_signal))
        with vpsfiles.VpsRoot(root) as files:
            if hostname:
                vpsfiles.write_hostname(files, hostname)
                vpsfiles.write_hosts(files, hostname)
            if request.task == protocol.TASK_VPS_REINSTALL:
                if request.root_password_hash:
                    credentials.set_root_password(files, request.root_password_hash)
                credentials.set_authorized_keys(files, request.ssh_keys)
    _mark(rt, ctid, request.operation_id, done=True)


def _settle_and_start(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    context.progress("settings", 70)
    vps.apply_settings(rt, request)
    context.progress("start", 85)
    _start(rt, request.ctid)
    quotas.converge(rt.storage, request)  # the new volume takes the second-level limits once mounted


def _reinstall(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    """A new root filesystem from the request's template, with its root password hash and SSH keys."""
    context.progress("template", 5)
    vps.ensure_template(rt, request.template, request.template_version, request.template_checksum)
    limits = vps.disk_limits(request.limits)
    _replace_volume(rt, context, request,
                    lambda pool: rt.storage.create(request.ctid, request.template, limits, pool), request.template)
    _settle_and_start(rt, context, request)


def _restore(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    """The VPS's volume as it was in backup `request.backup` (of this VPS), then started."""
    store = _backups(rt)
    path = backups.find(store.dir, request.ctid, request.backup)
    # A damaged backup is refused before the VPS's volume is touched (a refused unpack could not be).
    info = store.read(path) if _replaced_by(rt, request.ctid) == request.operation_id else store.verify(path)
    record = rt.registry.get(request.ctid)
    template = str(info.config.get("template") or record.template)
    try:
        rt.templates.verify(template)
    except NotFound:
        template = record.template
    limits = vps.disk_limits(request.limits)

    def make(pool: str | None) -> str:
        with _ticking(context, lambda: ("unpack", 50)):
            store.restore(path, request.ctid, pool=pool, limits=limits)  # leaves the volume active
        return rt.storage.get(request.ctid).root

    _replace_volume(rt, context, request, make, template)
    _settle_and_start(rt, context, request)


# -- snapshots -----------------------------------------------------------------------------------------
def _snapshot(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    ctid = request.ctid
    with rt.lock(ctid):
        if any(s.name == request.snapshot for s in rt.storage.snapshot_list(ctid)):
            return
        context.progress("snapshot", 30)
        rt.storage.snapshot_create(ctid, request.snapshot, functools.partial(rt.quiesce, ctid))


def _snapshot_delete(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    with rt.lock(request.ctid):
        if any(s.name == request.snapshot for s in rt.storage.snapshot_list(request.ctid)):
            rt.storage.snapshot_delete(request.ctid, request.snapshot)


def _rollback(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    """Stop, make the volume what it was at the snapshot, start."""
    ctid = request.ctid
    if not any(s.name == request.snapshot for s in rt.storage.snapshot_list(ctid)):
        raise NotFound(f"CT {ctid}: no snapshot {request.snapshot!r}")
    context.progress("stop", 20)
    _stop(rt, ctid)
    context.progress("rollback", 50)
    with rt.lock(ctid):
        rt.storage.snapshot_rollback(ctid, request.snapshot)
        rt.storage.activate(ctid)
    context.progress("start", 85)
    _start(rt, ctid)
    quotas.converge(rt.storage, request)


# -- backups -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _ticking(context: OperationContext, measure: Callable[[], tuple[str, int]]) -> Iterator[None]:
    """While the block runs: a progress report every PROGRESS_SECONDS with `measure()`'s (stage, percent).
    Each report also renews the operation's lease, so a long backup or restore is never taken for dead."""
    done = threading.Event()

    def tick() -> None:
        while not done.wait(PROGRESS_SECONDS):
            context.progress(*measure())

    thread = threading.Thread(target=tick, name="data-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _archive_progress(rt: Runtime, ctid: int, directory: str) -> Callable[[], tuple[str, int]]:
    """A backup's progress: the archive's size so far against the volume's use (compressed: a lower bound)."""
    try:
        used = max(1, rt.storage.usage(ctid).bytes_used)
    except Exception:
        used = 0

    def measure() -> tuple[str, int]:
        size = 0
        with contextlib.suppress(OSError):
            for name in os.listdir(directory):
                if name.startswith("."):
                    with contextlib.suppress(OSError):
                        size += os.path.getsize(os.path.join(directory, name, backups.TARBALL))
        return f"archive ({size // 2**20} MiB written)", 20 + min(70, size * 70 // used) if used else 50

    return measure


def _backup(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    ctid = request.ctid
    store = _backups(rt)
    if any(b.config.get("operation") == request.operation_id for b in store.list(ctid)):
        return
    record = rt.registry.get(ctid)
    context.progress("snapshot", 10)
    with rt.lock(ctid), _ticking(context, _archive_progress(rt, ctid, os.path.join(store.dir, str(ctid)))):
        store.backup(ctid, quiesce=functools.partial(rt.quiesce, ctid), keep=request.keep,
                     config={"operation": request.operation_id, "template": record.template,
                             "hostname": record.hostname})


def _backup_delete(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    _backups(rt).delete(request.ctid, request.backup)


def forget(rt: Runtime, ctid: int) -> None:
    """A destroyed VPS's backups and replace marker go with it."""
    _backups(rt).forget(ctid)
    statefile.remove(_marker(rt, ctid))


def write_credentials(rt: Runtime, request: protocol.VpsRequest) -> None:
    """Root's password hash (when the request carries one) and the panel's SSH keys, into the VPS's files."""
    ctid = request.ctid
    with rt.lock(ctid):
        # A VPS made before storage pools has its root in the registry record only.
        root = rt.storage.activate(ctid) if rt.storage.find(ctid) is not None else rt.registry.get(ctid).volume
        with vpsfiles.VpsRoot(root) as files:
            if request.root_password_hash:
                credentials.set_root_password(files, request.root_password_hash)
            credentials.set_authorized_keys(files, request.ssh_keys)


DATA_ACTIONS: dict[str, Callable[[Runtime, OperationContext, protocol.VpsRequest], None]] = {
    protocol.TASK_VPS_REINSTALL: _reinstall,
    protocol.TASK_VPS_SNAPSHOT: _snapshot,
    protocol.TASK_VPS_SNAPSHOT_DELETE: _snapshot_delete,
    protocol.TASK_VPS_ROLLBACK: _rollback,
    protocol.TASK_VPS_BACKUP: _backup,
    protocol.TASK_VPS_BACKUP_DELETE: _backup_delete,
    protocol.TASK_VPS_RESTORE: _restore,
}
_CREATING = (protocol.TASK_VPS_CREATE, protocol.TASK_VPS_START)


def work(config: NodeConfig) -> Callable[[OperationContext], dict[str, Any]]:
    """The `work` function of `execute` for every VPS task: the data tasks here, the others in
    worker/vps.py; then root's credentials for `set` and for the run that created the VPS, and a
    destroyed VPS's backups removed. The data tasks' facts list snapshots and backups too."""
    lifecycle = vps.work(config)

    def run(context: OperationContext) -> dict[str, Any]:
        request = context.request
        assert isinstance(request, protocol.VpsRequest)
        rt = vps.runtime(config)
        action = DATA_ACTIONS.get(request.task)
        if action is None:
            existed = rt.registry.find(request.ctid) is not None
            found = lifecycle(context)
            if request.task == protocol.TASK_VPS_SET or (request.task in _CREATING and not existed):
                write_credentials(rt, request)
            elif request.task == protocol.TASK_VPS_DESTROY:
                forget(rt, request.ctid)
            return found
        action(rt, context, request)
        found = vps.facts(rt, request.ctid)
        if found["state"] != protocol.VpsState.ABSENT:
            found.update(data_facts(rt, request.ctid))
        return found

    return run
