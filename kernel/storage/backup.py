"""Backups of a VPS volume into the node's backup directory, and restores from them.

A backup is a directory `<backup_dir>/<ctid>/<id>/` (id: UTC time to the microsecond, so names sort by age)::

    backup.json     format, ctid, node, pool, driver, limits, the caller's VPS config,
                    the tarball's sha256, skipped members
    rootfs.tar.gz   the volume's tree: numeric ids 0-65535 as on disk, no names

It is written as `.<id>.tmp` and renamed, so a reader never sees half a
backup. The tree is read from a point-in-time view (`Driver.consistent_view`:
a snapshot taken while the VPS is quiesced, or the live root while it stays
quiesced). Restoring creates a fresh volume on any pool and unpacks with
`kernel.archive`, which refuses absolute names, `..`, writes through
symlinks, device nodes and ids above 65535; a refused archive leaves no volume.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from kernel import archive
from kernel.config import check_ctid
from kernel.errors import InvalidArgument, NotFound, from_oserror
from kernel.reverter import Reverter
from kernel.statefile import ensure_dir, read_json, write_json
from kernel.storage.base import Limits, Quiesce
from kernel.storage.volumes import Storage

FORMAT = "ctpanel-backup"
VERSION = 1
META = "backup.json"
TARBALL = "rootfs.tar.gz"
_MAX_ID = 65535


@dataclass(frozen=True)
class BackupInfo:
    id: str
    ctid: int
    path: str
    created: float
    pool: str
    driver: str
    limits: Limits
    sha256: str
    size: int
    config: dict[str, object] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()


def freezer(freeze: Callable[[], None], thaw: Callable[[], None]) -> Quiesce:
    """A `Quiesce` from the runtime's freeze/thaw of a running VPS (the cgroup freezer)."""

    @contextlib.contextmanager
    def quiesce() -> Iterator[None]:
        freeze()
        try:
            yield
        finally:
            thaw()

    return quiesce


class Backups:
    def __init__(self, storage: Storage, backup_dir: str | None = None) -> None:
        self.storage = storage
        self.dir = backup_dir or storage.storage.backup_dir

    def _ct_dir(self, ctid: int) -> str:
        return os.path.join(self.dir, str(check_ctid(ctid)))

    # -- backup -------------------------------------------------------------------------------
    def backup(
        self,
        ctid: int,
        *,
        quiesce: Quiesce,
        config: Mapping[str, object] | None = None,
        keep: int = 0,
        compresslevel: int = 1,
    ) -> BackupInfo:
        """Back up the volume of `ctid`; with `keep` > 0 only the newest `keep` backups stay."""
        volume = self.storage.get(ctid)
        driver = self.storage.pool(volume.pool)
        ct_dir = ensure_dir(self._ct_dir(ctid), 0o700)
        now = time.time()
        backup_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1e6) % 1000000:06d}Z"
        tmp = os.path.join(ct_dir, f".{backup_id}.tmp")
        final = os.path.join(ct_dir, backup_id)
        with Reverter() as revert:
            os.mkdir(tmp, 0o700)
            revert.add(lambda: shutil.rmtree(tmp, ignore_errors=True), "remove partial backup")
            tarball = os.path.join(tmp, TARBALL)
            with driver.consistent_view(ctid, quiesce) as view:
                skipped = _write_tarball(view, tarball, compresslevel)
            info = BackupInfo(
                id=backup_id,
                ctid=ctid,
                path=final,
                created=time.time(),
                pool=volume.pool,
                driver=volume.driver,
                limits=volume.limits,
                sha256=_sha256(tarball),
                size=os.path.getsize(tarball),
                config=dict(config or {}),
                skipped=tuple(skipped),
            )
            write_json(os.path.join(tmp, META), _to_json(info, self.storage.config.node))
            os.rename(tmp, final)
            revert.success()
        if keep > 0:
            self.prune(ctid, keep)
        return info

    def list(self, ctid: int) -> list[BackupInfo]:
        """Backups of `ctid`, oldest first."""
        try:
            names = sorted(n for n in os.listdir(self._ct_dir(ctid)) if not n.startswith("."))
        except FileNotFoundError:
            return []
        return [self.read(os.path.join(self._ct_dir(ctid), n)) for n in names]

    def prune(self, ctid: int, keep: int) -> list[str]:
        """Retention `keep N`: remove all but the newest `keep` backups; return removed ids."""
        if keep < 1:
            raise InvalidArgument("keep must be at least 1")
        old = self.list(ctid)[:-keep]
        for info in old:
            shutil.rmtree(info.path)
        return [info.id for info in old]

    def delete(self, ctid: int, backup_id: str) -> bool:
        """Remove one backup of `ctid`; False when there is none (so a repeated delete is no error)."""
        try:
            path = find(self.dir, ctid, backup_id)
        except NotFound:
            return False
        shutil.rmtree(path)
        return True

    def forget(self, ctid: int) -> None:
        """Remove every backup of `ctid` (its VPS is destroyed). Idempotent."""
        shutil.rmtree(self._ct_dir(ctid), ignore_errors=True)

    def verify(self, path: str) -> BackupInfo:
        """The backup at `path`, its tarball checked against its checksum (before anything is replaced)."""
        info = self.read(path)
        if _sha256(os.path.join(path, TARBALL)) != info.sha256:
            raise InvalidArgument(f"{path}: the tarball does not match its checksum")
        return info

    @staticmethod
    def read(path: str) -> BackupInfo:
        """The backup at `path` (a directory holding backup.json), validated."""
        data = read_json(os.path.join(path, META))
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
            raise InvalidArgument(f"{path}: not a ctpanel backup of format version {VERSION}")
        config = data.get("config", {})
        if not isinstance(config, dict):
            raise InvalidArgument(f"{path}: bad config")
        return BackupInfo(
            id=str(data["id"]),
            ctid=check_ctid(data["ctid"]),
            path=path,
            created=float(data["created"]),
            pool=str(data["pool"]),
            driver=str(data["driver"]),
            limits=Limits.from_json(data["limits"]),
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            config=config,
            skipped=tuple(str(s) for s in data.get("skipped", [])),
        )

    # -- restore ------------------------------------------------------------------------------
    def restore(
        self, path: str, ctid: int, *, pool: str | None = None, limits: Limits | None = None
    ) -> BackupInfo:
        """Make volume `ctid` (same or new CTID) from the backup at `path`; it is left active.

        The pool defaults to the backup's own pool name when this node has it, else the
        node's default; the limits to the backup's.
        """
        info = self.verify(path)
        tarball = os.path.join(path, TARBALL)
        if pool is None:
            pool = info.pool if info.pool in self.storage.pools else None
        with Reverter() as revert:
            root = self.storage.create(ctid, None, limits or info.limits, pool)
            revert.add(lambda: self.storage.destroy(ctid), "destroy restored volume")
            archive.unpack(tarball, root, xattrs=True)
            revert.success()
        return info


def _to_json(info: BackupInfo, node: str) -> dict[str, object]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "id": info.id,
        "ctid": info.ctid,
        "node": node,
        "created": info.created,
        "pool": info.pool,
        "driver": info.driver,
        "limits": info.limits.to_json(),
        "archive": TARBALL,
        "sha256": info.sha256,
        "size": info.size,
        "config": json.loads(json.dumps(info.config)),
        "skipped": list(info.skipped),
    }


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_tarball(view: str, tarball: str, compresslevel: int) -> list[str]:
    """Write the tree at `view` (immutable while we read) to `tarball`; return skipped names.

    FIFOs and sockets are skipped (restores refuse them; a VPS cannot make device nodes).
    """
    skipped: list[str] = []
    with tarfile.open(tarball, "w:gz", compresslevel=compresslevel, format=tarfile.PAX_FORMAT) as tar:
        for path, name in _walk(view):
            info = tar.gettarinfo(path, name)
            if info is None or not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
                skipped.append(name)
                continue
            if not (0 <= info.uid <= _MAX_ID and 0 <= info.gid <= _MAX_ID):
                raise InvalidArgument(f"id above {_MAX_ID} in the volume: {name!r}")
            info.uname = info.gname = ""
            if not info.issym():
                skipped += _add_xattrs(info, path, name)
            if not info.isreg():
                tar.addfile(info)
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                raise from_oserror(exc, f"cannot read {name}") from exc
            with os.fdopen(fd, "rb") as fh:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or st.st_size != info.size:
                    raise InvalidArgument(f"{name} changed while it was backed up")
                tar.addfile(info, fh)
    return skipped


def _add_xattrs(info: tarfile.TarInfo, path: str, name: str) -> list[str]:
    """Put the file's kept extended attributes (archive.XATTRS) into its pax header; return the others."""
    try:
        keys = os.listxattr(path, follow_symlinks=False)
        values = {key: os.getxattr(path, key, follow_symlinks=False) for key in keys}
    except OSError as exc:
        raise from_oserror(exc, f"cannot read the extended attributes of {name}") from exc
    for key, value in values.items():
        if archive.xattr_allowed(key):
            info.pax_headers[archive.PAX_XATTR + key] = value.decode("utf-8", "surrogateescape")
    return [f"{name} (xattr {key})" for key in values if not archive.xattr_allowed(key)]


def _walk(top: str) -> Iterator[tuple[str, str]]:
    """(host path, member name) for `top` and everything below it, parents first, no symlinks followed."""
    yield top, "."
    stack = [(top, "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise from_oserror(exc, f"cannot list {prefix or '/'}") from exc
        for entry in entries:
            name = f"{prefix}{entry.name}"
            yield entry.path, name
            if entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, f"{name}/"))


def find(backup_dir: str, ctid: int, backup_id: str) -> str:
    """The path of backup `backup_id` of `ctid` in `backup_dir`."""
    path = os.path.join(backup_dir, str(check_ctid(ctid)), archive.clean_name(backup_id))
    if "/" in backup_id or not os.path.isfile(os.path.join(path, META)):
        raise NotFound(f"CT {ctid}: no backup {backup_id!r}")
    return path
