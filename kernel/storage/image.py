"""`image`: like OpenVZ's ploop, one sparse file per VPS holding its own ext4.

Pool layout (any directory on any local filesystem)::

    templates/<name>@<sha12>/   the template unpacked once (read by mke2fs -d)
    images/<ctid>.img           sparse file, the VPS's ext4
    private/<ctid>/             mount point: the VPS's root while active
    snapshots/<ctid>/<name>.img consistent copies, with <name>.json beside them

First level: `diskspace` is the filesystem's size, `diskinodes` its inode
count given to mke2fs (ext4 keeps the inode density, so a grow adds inodes
in proportion and the count can never be changed alone). Growing works
online (loop capacity, then resize2fs on the mounted filesystem); shrinking
needs the volume inactive and fails with `NoSpace` when the data does not
fit. Second level: with `quotaugidlimit` > 0 the filesystem carries ext4's
`quota` feature (usrquota, grpquota) and is mounted with limits enforced;
the limits are per id as the VPS sees it (0-65535), which is also the id on
disk. `statfs` inside the VPS reports this filesystem, so `df` shows the
VPS's own size and use.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator

from kernel import archive
from kernel import syscalls as sc
from kernel.config import check_ctid
from kernel.errors import (
    AlreadyExists,
    Busy,
    CommandFailed,
    InvalidArgument,
    LimitReached,
    NoSpace,
    NotFound,
    NotSupported,
    from_oserror,
)
from kernel.reverter import Reverter
from kernel.run import run
from kernel.statefile import ensure_dir
from kernel.storage import loop, mounts
from kernel.storage.base import Capabilities, Driver, Limits, Quiesce, Snapshot, Usage, check_snapshot_name

BLOCK = 4096
DEFAULT_SIZE = 10 << 30
MIN_SIZE = 16 << 20
CAP_SYS_RESOURCE = 24
_QUOTA_OPTS = "usrquota,grpquota"
_KINDS = {"user": "-u", "group": "-g"}


def _header(image: str) -> dict[str, str]:
    """The superblock fields dumpe2fs prints (`Block count`, `Inode count`, features...)."""
    out = {}
    for line in run(["dumpe2fs", "-h", image]).stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


class ImageDriver(Driver):
    name = "image"
    capabilities = Capabilities(
        diskspace=True,
        diskinodes=True,
        ugid_quota=True,
        online_grow=True,
        shrink=True,
        snapshots=True,
        native_templates=True,
        own_df=True,
    )

    # -- pool ---------------------------------------------------------------------------------
    def setup(self) -> None:
        for sub in ("", "templates", "images", "private", "snapshots"):
            os.chmod(ensure_dir(os.path.join(self.pool.path, sub), 0o700), 0o700)

    def _default_size(self) -> int:
        return int(self.pool.options.get("default_size", DEFAULT_SIZE))

    # -- templates ----------------------------------------------------------------------------
    def prepare_template(self, name: str, tarball: str, checksum: str) -> None:
        """Unpack once (checked member by member); every create then builds its ext4 from it."""
        final = self.template_path(name, checksum)
        tmp = tempfile.mkdtemp(prefix=f".{name}.", dir=os.path.dirname(final))
        try:
            archive.unpack(tarball, tmp)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    VOLUME_DIRS = (("images", ".img"), ("private", ""), ("snapshots", ""))

    # -- paths --------------------------------------------------------------------------------
    def root(self, ctid: int) -> str:
        return os.path.join(self.pool.path, "private", str(check_ctid(ctid)))

    def image(self, ctid: int) -> str:
        return os.path.join(self.pool.path, "images", f"{check_ctid(ctid)}.img")

    def exists(self, ctid: int) -> bool:
        return os.path.exists(self.image(ctid))

    def active(self, ctid: int) -> bool:
        return mounts.find(self.root(ctid)) is not None

    # -- volumes ------------------------------------------------------------------------------
    def create(self, ctid: int, template: tuple[str, str, str] | None, limits: Limits) -> None:
        image = self.image(ctid)
        size = limits.space or self._default_size()
        if size < MIN_SIZE:
            raise InvalidArgument(f"diskspace below the minimum of {MIN_SIZE >> 20} MiB")
        with Reverter() as revert:
            try:
                fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                raise AlreadyExists(f"CT {ctid}: volume exists", path=image) from None
            revert.add(lambda: os.unlink(image), "remove image")
            try:
                os.ftruncate(fd, size - size % BLOCK)
            finally:
                os.close(fd)
            extended = "lazy_itable_init=1,lazy_journal_init=1"
            argv = ["mkfs.ext4", "-q", "-F", "-m", "0", "-b", str(BLOCK), "-L", f"ct{ctid}"]
            if limits.inodes:
                argv += ["-N", str(limits.inodes)]
            if limits.quotaugidlimit:
                argv += ["-O", "quota"]
                extended += ",quotatype=usrquota:grpquota"
            argv += ["-E", extended]
            if template is not None:
                argv += ["-d", self.template_path(template[0], template[2])]
            run([*argv, image], timeout=600)
            os.makedirs(self.root(ctid), 0o700, exist_ok=True)
            revert.success()

    def activate(self, ctid: int, limits: Limits) -> str:
        root = self.root(ctid)
        if self.active(ctid):
            return root
        if not self.exists(ctid):
            raise NotFound(f"CT {ctid}: volume is missing", path=self.image(ctid))
        os.makedirs(root, 0o700, exist_ok=True)
        device, fd = loop.attach(self.image(ctid))
        try:
            try:
                sc.mount(device, root, "ext4", sc.MS_NODEV, _QUOTA_OPTS if limits.quotaugidlimit else None)
            except InvalidArgument as exc:
                if limits.quotaugidlimit and not _kernel_has_quota_v2():
                    raise NotSupported(
                        "this kernel cannot mount ext4 with quota (needs CONFIG_QFMT_V2): "
                        "set quotaugidlimit to 0 or use a stock distribution kernel"
                    ) from exc
                raise
        finally:
            os.close(fd)  # AUTOCLEAR: the device goes away with the last unmount
        return root

    def deactivate(self, ctid: int) -> None:
        mounts.unmount(self.root(ctid))
        loop.wait_detached(self.image(ctid))

    def destroy(self, ctid: int) -> None:
        self.deactivate(ctid)
        with contextlib.suppress(FileNotFoundError):
            for snap in self.snapshot_list(ctid):
                self.snapshot_delete(ctid, snap.name)
            os.rmdir(self.snapshot_dir(ctid))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.image(ctid))
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(self.root(ctid))

    def leftovers(self, ctid: int) -> list[str]:
        found = [f"loop {d}" for d in loop.devices_of(self.image(ctid))]
        if self.active(ctid):
            found.append(f"mount {self.root(ctid)}")
        for path in (self.image(ctid), self.root(ctid), self.snapshot_dir(ctid)):
            if os.path.lexists(path):
                found.append(path)
        return found

    # -- limits -------------------------------------------------------------------------------
    def set_limits(self, ctid: int, old: Limits, new: Limits) -> None:
        if (new.quotaugidlimit > 0) != (old.quotaugidlimit > 0):
            if self.active(ctid):
                raise Busy("switching the second-level quota on or off needs the VPS stopped")
            feature = "quota" if new.quotaugidlimit else "^quota"
            run(["tune2fs", "-O", feature, *(["-Q", _QUOTA_OPTS] if new.quotaugidlimit else []), self.image(ctid)])
        size = new.space or old.space or self._default_size()
        current = os.stat(self.image(ctid)).st_size
        size -= size % BLOCK
        if size == current:
            if new.inodes != old.inodes:
                raise NotSupported(
                    "image: the inode count is set at create and grows with diskspace (ext4 keeps its "
                    "inode density); change diskspace, or recreate the volume"
                )
            return
        if size < MIN_SIZE:
            raise InvalidArgument(f"diskspace below the minimum of {MIN_SIZE >> 20} MiB")
        if size > current:
            self._grow(ctid, size)
        else:
            self._shrink(ctid, size)

    def _grow(self, ctid: int, size: int) -> None:
        image = self.image(ctid)
        active = self.active(ctid)
        if active and not _has_cap(CAP_SYS_RESOURCE):
            raise NotSupported(
                "growing a mounted ext4 needs CAP_SYS_RESOURCE, which this node's root lacks: "
                "stop the VPS to grow its volume offline"
            )
        with open(image, "r+b") as fh:
            fh.truncate(size)
        if active:
            devices = loop.devices_of(image)
            if len(devices) != 1:
                raise Busy(f"CT {ctid}: expected one loop device, found {devices}")
            loop.set_capacity(devices[0])
            run(["resize2fs", devices[0]], timeout=600)  # online: ext4 grows while mounted
        else:
            run(["e2fsck", "-f", "-p", image], timeout=600)
            run(["resize2fs", image], timeout=600)

    def _shrink(self, ctid: int, size: int) -> None:
        if self.active(ctid):
            raise Busy("shrinking an image needs the VPS stopped (ext4 shrinks offline only)")
        image = self.image(ctid)
        run(["e2fsck", "-f", "-p", image], timeout=600)
        minimum = int(run(["resize2fs", "-P", image]).stdout.rsplit(":", 1)[1]) * BLOCK
        if size < minimum:
            raise NoSpace(f"the data does not fit: this volume needs at least {-(-minimum // (1 << 20))} MiB")
        try:
            run(["resize2fs", image, f"{size // 1024}K"], timeout=600)
        except CommandFailed as exc:
            if "No space left" in exc.stderr:
                raise NoSpace("the data does not fit into the smaller size") from exc
            raise
        with open(image, "r+b") as fh:
            fh.truncate(size)

    def usage(self, ctid: int) -> Usage:
        if self.active(ctid):
            st = os.statvfs(self.root(ctid))
            return Usage(
                bytes_used=(st.f_blocks - st.f_bfree) * st.f_frsize,
                bytes_limit=st.f_blocks * st.f_frsize,
                inodes_used=st.f_files - st.f_ffree,
                inodes_limit=st.f_files,
            )
        head = _header(self.image(ctid))
        block = int(head["Block size"])
        inodes = int(head["Inode count"])
        overhead = int(head.get("Overhead clusters", "0"))
        total = int(head["Block count"]) - overhead
        return Usage(
            bytes_used=(total - int(head["Free blocks"])) * block,
            bytes_limit=total * block,
            inodes_used=inodes - int(head["Free inodes"]),
            inodes_limit=inodes,
        )

    # -- second level -------------------------------------------------------------------------
    def set_ugid_quota(
        self, ctid: int, kind: str, ident: int, blocks: tuple[int, int], inodes: tuple[int, int], *, limit: int = 0
    ) -> None:
        """Limits for user or group `ident` (as the VPS sees it); `blocks` in bytes (soft, hard).

        `limit` is quotaugidlimit: how many ids may carry limits at once.
        """
        flag = _kind(kind)
        if not 0 <= ident <= 65535:
            raise InvalidArgument("ids inside a VPS are 0..65535")
        root = self._quota_root(ctid)
        clearing = not any(blocks) and not any(inodes)
        if limit and not clearing:
            limited = {row["id"] for row in self.ugid_report(ctid, kind) if row["bhard"] or row["bsoft"]
                       or row["ihard"] or row["isoft"]}  # fmt: skip
            if ident not in limited and len(limited) >= limit:
                raise LimitReached(f"quotaugidlimit {limit} reached: {len(limited)} {kind}s already have limits")
        run(["setquota", flag, str(ident), str(blocks[0] // 1024), str(blocks[1] // 1024),
             str(inodes[0]), str(inodes[1]), root])  # fmt: skip

    def ugid_report(self, ctid: int, kind: str) -> list[dict[str, int]]:
        """repquota's table for the volume: id, used bytes/inodes, soft and hard limits.

        -v lists ids with limits but no usage too (without it, such an id's limits could never be seen or cleared).
        """
        out = run(["repquota", _kind(kind), "-n", "-p", "-v", self._quota_root(ctid)]).stdout
        rows = []
        for line in out.splitlines():
            fields = line.split()
            if not line.startswith("#") or len(fields) < 9:
                continue
            rows.append({
                "id": int(fields[0][1:]),
                "bytes": int(fields[2]) * 1024, "bsoft": int(fields[3]) * 1024, "bhard": int(fields[4]) * 1024,
                "inodes": int(fields[6]), "isoft": int(fields[7]), "ihard": int(fields[8]),
            })  # fmt: skip
        return rows

    def _quota_root(self, ctid: int) -> str:
        if not self.active(ctid):
            raise Busy(f"CT {ctid}: second-level quota needs the volume mounted (start the VPS)")
        if "quota" not in _header(self.image(ctid)).get("Filesystem features", "").split():
            raise NotSupported(f"CT {ctid}: quotaugidlimit is 0 (no second-level quota on this volume)")
        return self.root(ctid)

    # -- snapshots ----------------------------------------------------------------------------
    def _snapshot_image(self, ctid: int, name: str) -> str:
        return os.path.join(self.snapshot_dir(ctid), f"{check_snapshot_name(name)}.img")

    def snapshot_create(self, ctid: int, name: str, quiesce: Quiesce) -> Snapshot:
        """A consistent copy: VPS quiesced, ext4 frozen (dirty data on disk), image copied sparse."""
        target = self._snapshot_image(ctid, name)
        if os.path.lexists(target):
            raise AlreadyExists(f"CT {ctid}: snapshot {name!r} exists")
        ensure_dir(self.snapshot_dir(ctid))
        with Reverter() as revert:
            revert.add(lambda: _unlink(target), "remove snapshot copy")
            with quiesce():
                frozen = mounts.frozen_fs(self.root(ctid)) if self.active(ctid) else contextlib.nullcontext()
                with frozen:
                    run(["cp", "--sparse=always", "--reflink=auto", self.image(ctid), target], timeout=3600)
            snap = self._record_snapshot(ctid, name)
            revert.success()
            return snap

    def snapshot_delete(self, ctid: int, name: str) -> None:
        _unlink(self._snapshot_image(ctid, name))
        self._forget_snapshot(ctid, name)

    def snapshot_rollback(self, ctid: int, name: str) -> None:
        self._snapshot_meta(ctid, name)
        if self.active(ctid):
            raise Busy("rolling back needs the VPS stopped")
        image = self.image(ctid)
        tmp = f"{image}.rollback"
        run(["cp", "--sparse=always", "--reflink=auto", self._snapshot_image(ctid, name), tmp], timeout=3600)
        os.rename(tmp, image)

    @contextlib.contextmanager
    def snapshot_view(self, ctid: int, name: str) -> Iterator[str]:
        """The snapshot's ext4 mounted read-only (no journal replay) on a private mount point."""
        self._snapshot_meta(ctid, name)
        image = self._snapshot_image(ctid, name)
        point = tempfile.mkdtemp(prefix=f".view-{ctid}-", dir=os.path.join(self.pool.path, "private"))
        try:
            device, fd = loop.attach(image, read_only=True)
            try:
                sc.mount(device, point, "ext4", sc.MS_RDONLY | sc.MS_NODEV | sc.MS_NOSUID, "noload")
            finally:
                os.close(fd)
            try:
                yield point
            finally:
                mounts.unmount(point)
                loop.wait_detached(image)
        finally:
            os.rmdir(point)


def _kind(kind: str) -> str:
    try:
        return _KINDS[kind]
    except KeyError:
        raise InvalidArgument(f"quota kind is user or group, not {kind!r}") from None


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _has_cap(bit: int) -> bool:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    return False


def _kernel_has_quota_v2() -> bool:
    try:
        with open("/proc/modules", encoding="ascii") as fh:
            if re.search(r"^quota_v2 ", fh.read(), re.M):
                return True
    except OSError as exc:
        raise from_oserror(exc, "cannot read /proc/modules") from exc
    return os.path.isdir("/sys/module/quota_v2")
