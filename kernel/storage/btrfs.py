"""`btrfs`: each VPS is a subvolume snapshotted from a read-only template subvolume.

Pool layout (the pool path is any directory on a btrfs filesystem)::

    templates/<name>@<sha12>   read-only subvolume per template version
    private/<ctid>             the VPS's subvolume (its root directory)
    snapshots/<ctid>/<name>    read-only snapshots, with <name>.json beside them

`diskspace` is the limit on the subvolume's level-0 qgroup (referenced
bytes: everything the VPS's files use, template extents included, as `du`
inside would count them). btrfs has no inode limit: `diskinodes` is recorded
and shown, not enforced (the capabilities say so). Quota is switched on
for the whole filesystem by `setup`. Creating a VPS is a snapshot: O(1),
extents shared with the template until written.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from kernel import archive
from kernel.config import check_ctid
from kernel.errors import AlreadyExists, CommandFailed, InvalidArgument, KernelError, NotFound
from kernel.reverter import Reverter
from kernel.run import run
from kernel.statefile import ensure_dir
from kernel.storage import btrfsio, mounts
from kernel.storage.base import Capabilities, Driver, Limits, Quiesce, Snapshot, Usage, check_snapshot_name


def _btrfs(*args: str, check: bool = True) -> str:
    return run(["btrfs", *args], check=check, timeout=600).stdout


class BtrfsDriver(Driver):
    name = "btrfs"
    capabilities = Capabilities(
        diskspace=True, online_grow=True, shrink=True, snapshots=True, native_templates=True, instant_clone=True
    )

    VOLUME_DIRS = (("private", ""), ("snapshots", ""))

    # -- pool ---------------------------------------------------------------------------------
    def setup(self) -> None:
        if mounts.fstype(self.pool.path) != "btrfs":
            raise InvalidArgument(f"pool {self.pool.name}: {self.pool.path} is not on btrfs")
        for sub in ("", "templates", "private", "snapshots"):
            os.chmod(ensure_dir(os.path.join(self.pool.path, sub), 0o700), 0o700)
        if run(["btrfs", "qgroup", "show", self.pool.path], check=False).returncode != 0:
            _btrfs("quota", "enable", self.pool.path)

    # -- templates ----------------------------------------------------------------------------
    def prepare_template(self, name: str, tarball: str, checksum: str) -> None:
        final = self.template_path(name, checksum)
        tmp = os.path.join(os.path.dirname(final), f".{os.path.basename(final)}.{os.getpid()}")
        with Reverter() as revert:
            btrfsio.create(tmp)
            revert.add(lambda: self._delete_subvolume(tmp), "delete template subvolume")
            archive.unpack(tarball, tmp)
            btrfsio.set_readonly(tmp, True)
            os.rename(tmp, final)
            revert.success()

    # -- volumes ------------------------------------------------------------------------------
    def root(self, ctid: int) -> str:
        return os.path.join(self.pool.path, "private", str(check_ctid(ctid)))

    def exists(self, ctid: int) -> bool:
        return os.path.isdir(self.root(ctid))

    def create(self, ctid: int, template: tuple[str, str, str] | None, limits: Limits) -> None:
        root = self.root(ctid)
        if os.path.lexists(root):
            raise AlreadyExists(f"CT {ctid}: volume exists", path=root)
        with Reverter() as revert:
            if template is None:
                btrfsio.create(root)
            else:
                btrfsio.snapshot(self.template_path(template[0], template[2]), root)
            revert.add(lambda: self._delete_subvolume(root), "delete subvolume")
            self.set_limits(ctid, Limits(), limits)
            revert.success()

    def activate(self, ctid: int, limits: Limits) -> str:
        if not self.exists(ctid):
            raise NotFound(f"CT {ctid}: volume is missing", path=self.root(ctid))
        return self.root(ctid)

    def deactivate(self, ctid: int) -> None:
        return None

    def active(self, ctid: int) -> bool:
        return self.exists(ctid)

    def destroy(self, ctid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            for snap in self.snapshot_list(ctid):
                self.snapshot_delete(ctid, snap.name)
        if os.path.isdir(self.root(ctid)):
            self._delete_subvolume(self.root(ctid))
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(self.snapshot_dir(ctid))

    def set_limits(self, ctid: int, old: Limits, new: Limits) -> None:
        if new.quotaugidlimit:
            raise InvalidArgument("btrfs has no user/group quota: use the image driver for quotaugidlimit")
        btrfsio.qgroup_limit(self.root(ctid), new.space)

    def usage(self, ctid: int) -> Usage:
        btrfsio.sync(self.pool.path)  # qgroup numbers are updated at commit
        qgroup = self.qgroup(ctid)
        if qgroup is None:
            raise NotFound(f"CT {ctid}: no qgroup")
        rfer, _excl, max_rfer = qgroup
        return Usage(bytes_used=rfer, bytes_limit=max_rfer)

    def subvolume_id(self, path: str) -> int:
        return btrfsio.subvolume_id(path)

    def qgroup(self, ctid: int) -> tuple[int, int, int] | None:
        """(referenced, exclusive, referenced limit or 0) of the VPS's qgroup."""
        return btrfsio.qgroup(self.pool.path, self.subvolume_id(self.root(ctid)))

    def qgroups(self) -> dict[int, tuple[int, int, int]]:
        """Every level-0 qgroup of the filesystem: subvolume id -> (rfer, excl, max_rfer)."""
        return btrfsio.qgroups(self.pool.path)

    def leftovers(self, ctid: int) -> list[str]:
        found = []
        for path in (self.root(ctid), self.snapshot_dir(ctid)):
            if os.path.lexists(path):
                found.append(path)
        return found

    def _delete_subvolume(self, path: str) -> None:
        """Delete a subvolume, nested ones (made inside by the VPS) first, then their qgroups."""
        subvol = self.subvolume_id(path)
        # Listed paths are relative to the filesystem's top level, like subvolid-resolve's.
        ours = _btrfs("inspect-internal", "subvolid-resolve", str(subvol), path).strip()
        for line in _btrfs("subvolume", "list", "-o", path).splitlines():
            nested = line.split(" path ", 1)[1]
            if nested.startswith(ours + "/"):
                self._delete_subvolume(os.path.join(path, nested[len(ours) + 1 :]))
        with contextlib.suppress(KernelError):
            btrfsio.set_readonly(path, False)
        _btrfs("subvolume", "delete", "--commit-after", path)
        self._drop_qgroup(subvol)

    def _drop_qgroup(self, subvol: int) -> None:
        """Remove the deleted subvolume's qgroup once the cleaner has dropped the subvolume."""
        _btrfs("subvolume", "sync", self.pool.path, str(subvol))
        if subvol in self.qgroups():
            try:
                _btrfs("qgroup", "destroy", f"0/{subvol}", self.pool.path)
            except CommandFailed:
                if subvol in self.qgroups():  # newer kernels drop it themselves, maybe meanwhile
                    raise

    # -- snapshots ----------------------------------------------------------------------------
    def _snapshot_path(self, ctid: int, name: str) -> str:
        return os.path.join(self.snapshot_dir(ctid), check_snapshot_name(name))

    def snapshot_create(self, ctid: int, name: str, quiesce: Quiesce) -> Snapshot:
        path = self._snapshot_path(ctid, name)
        if os.path.lexists(path):
            raise AlreadyExists(f"CT {ctid}: snapshot {name!r} exists")
        ensure_dir(self.snapshot_dir(ctid))
        with Reverter() as revert:
            with quiesce():
                btrfsio.snapshot(self.root(ctid), path, readonly=True)
            revert.add(lambda: self._delete_subvolume(path), "delete snapshot")
            snap = self._record_snapshot(ctid, name)
            revert.success()
            return snap

    def snapshot_delete(self, ctid: int, name: str) -> None:
        path = self._snapshot_path(ctid, name)
        if os.path.isdir(path):
            self._delete_subvolume(path)
        self._forget_snapshot(ctid, name)

    def snapshot_rollback(self, ctid: int, name: str) -> None:
        self._snapshot_meta(ctid, name)
        root = self.root(ctid)
        limit = self.usage(ctid).bytes_limit
        fresh = os.path.join(os.path.dirname(root), f".{ctid}.rollback")
        old = os.path.join(os.path.dirname(root), f".{ctid}.old")
        with Reverter() as revert:
            btrfsio.snapshot(self._snapshot_path(ctid, name), fresh)
            revert.add(lambda: self._delete_subvolume(fresh), "delete rollback subvolume")
            btrfsio.qgroup_limit(fresh, limit)
            os.rename(root, old)
            revert.add(lambda: os.rename(old, root), "put the volume back")
            os.rename(fresh, root)
            revert.success()
        self._delete_subvolume(old)

    @contextlib.contextmanager
    def snapshot_view(self, ctid: int, name: str) -> Iterator[str]:
        self._snapshot_meta(ctid, name)
        yield self._snapshot_path(ctid, name)
