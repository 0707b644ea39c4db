"""The storage driver interface: pools, limits, capabilities, and the base class.

A driver manages the VPS volumes of one pool. What a driver can do is data
(`Capabilities`), so callers ask before they act; every operation a driver
does not have raises `NotSupported` from this base class. Multi-step work
inside a driver uses `kernel.reverter.Reverter`.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import ClassVar

from kernel.config import check_ctid
from kernel.errors import InvalidArgument, NotFound, NotSupported
from kernel.statefile import ensure_dir, read_json, write_json

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_SNAPSHOT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

#: Quiesce: a context manager during which the VPS writes nothing (its cgroup frozen).
Quiesce = Callable[[], AbstractContextManager[None]]


def no_quiesce() -> AbstractContextManager[None]:
    """For a VPS that is not running."""
    return contextlib.nullcontext()


def check_snapshot_name(name: str) -> str:
    if not _SNAPSHOT.match(name):
        raise InvalidArgument(f"bad snapshot name: {name!r}")
    return name


@dataclass(frozen=True)
class PoolConfig:
    """One storage pool of a node: a name, a driver and where the driver keeps its volumes."""

    name: str
    driver: str
    path: str
    options: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise InvalidArgument(f"bad pool name: {self.name!r}")
        if not os.path.isabs(self.path):
            raise InvalidArgument(f"pool {self.name}: path must be absolute")


@dataclass(frozen=True)
class Limits:
    """OpenVZ's disk quota parameters. Bytes and inode counts; 0 means unlimited.

    `diskspace`/`diskinodes` are (soft, hard) like `vzctl set --diskspace SOFT:HARD`;
    drivers enforce the hard value (see docs/storage.md for what soft means per driver).
    `quotaugidlimit` > 0 turns on the second level (per user/group quota inside).
    """

    diskspace: tuple[int, int] = (0, 0)
    diskinodes: tuple[int, int] = (0, 0)
    quotaugidlimit: int = 0

    def __post_init__(self) -> None:
        for label, (soft, hard) in (("diskspace", self.diskspace), ("diskinodes", self.diskinodes)):
            if soft < 0 or hard < 0 or (hard and soft > hard):
                raise InvalidArgument(f"{label}: need 0 <= soft <= hard, got {soft}:{hard}")
        if self.quotaugidlimit < 0:
            raise InvalidArgument("quotaugidlimit must be >= 0")

    @property
    def space(self) -> int:
        """The enforced space limit in bytes (hard, or soft when only soft is set)."""
        return self.diskspace[1] or self.diskspace[0]

    @property
    def inodes(self) -> int:
        return self.diskinodes[1] or self.diskinodes[0]

    def to_json(self) -> dict[str, object]:
        return {
            "diskspace": list(self.diskspace),
            "diskinodes": list(self.diskinodes),
            "quotaugidlimit": self.quotaugidlimit,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Limits:
        def pair(key: str) -> tuple[int, int]:
            raw = data.get(key, (0, 0))
            if not isinstance(raw, (list, tuple)) or len(raw) != 2:
                raise InvalidArgument(f"bad {key}: {raw!r}")
            return _int(raw[0]), _int(raw[1])

        return cls(pair("diskspace"), pair("diskinodes"), _int(data.get("quotaugidlimit", 0)))


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"not an integer: {value!r}")
    return value


@dataclass(frozen=True)
class Usage:
    """What `vzlist -o diskspace,diskinodes` shows: use and the enforced limits (0 = none)."""

    bytes_used: int
    bytes_limit: int
    inodes_used: int | None = None  # None when the driver cannot count inodes
    inodes_limit: int = 0


@dataclass(frozen=True)
class Capabilities:
    """What a driver can do; shown as a table in docs/storage.md."""

    diskspace: bool = False  # first level: space limit enforced
    diskinodes: bool = False  # first level: inode limit enforced
    ugid_quota: bool = False  # second level: user/group quota inside
    online_grow: bool = False
    shrink: bool = False  # offline
    snapshots: bool = False
    native_templates: bool = False  # templates prepared in the pool's own form
    instant_clone: bool = False  # create from a template is O(1)
    own_df: bool = False  # statfs inside shows the VPS's own size and use


@dataclass(frozen=True)
class Snapshot:
    name: str
    created: float


class Driver:
    """Base of every storage driver; one instance manages one pool.

    Volumes are named by CTID. `activate` makes the root directory available
    on the host (mounting it when the driver needs to) and returns its path;
    it is idempotent, like every operation here.
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: (subdirectory, suffix) where a volume's objects are named by CTID: what `volumes` lists
    VOLUME_DIRS: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, pool: PoolConfig) -> None:
        self.pool = pool

    # -- pool ---------------------------------------------------------------------------------
    def setup(self) -> None:
        """Make the pool ready (directories, quota switched on); idempotent."""
        raise NotSupported(f"{self.name}: setup")

    # -- templates ----------------------------------------------------------------------------
    def template_path(self, name: str, checksum: str) -> str:
        """Where a driver with native templates keeps `name` built from the tarball with `checksum`."""
        return os.path.join(self.pool.path, "templates", f"{name}@{checksum.partition(':')[2][:12]}")

    def template_ready(self, name: str, checksum: str) -> bool:
        return self.capabilities.native_templates and os.path.isdir(self.template_path(name, checksum))

    def prepare_template(self, name: str, tarball: str, checksum: str) -> None:
        raise NotSupported(f"{self.name}: driver-native templates")

    # -- volumes ------------------------------------------------------------------------------
    def root(self, ctid: int) -> str:
        """The host path where the VPS's root directory is (mounted when active)."""
        raise NotSupported(f"{self.name}: root")

    def create(self, ctid: int, template: tuple[str, str, str] | None, limits: Limits) -> None:
        """Make the volume; `template` is (name, tarball, checksum) or None for an empty one."""
        raise NotSupported(f"{self.name}: create")

    def activate(self, ctid: int, limits: Limits) -> str:
        raise NotSupported(f"{self.name}: activate")

    def deactivate(self, ctid: int) -> None:
        raise NotSupported(f"{self.name}: deactivate")

    def active(self, ctid: int) -> bool:
        raise NotSupported(f"{self.name}: active")

    def destroy(self, ctid: int) -> None:
        raise NotSupported(f"{self.name}: destroy")

    def exists(self, ctid: int) -> bool:
        raise NotSupported(f"{self.name}: exists")

    def set_limits(self, ctid: int, old: Limits, new: Limits) -> None:
        if old != new:
            raise NotSupported(f"{self.name}: disk limits")

    def usage(self, ctid: int) -> Usage:
        raise NotSupported(f"{self.name}: usage")

    def leftovers(self, ctid: int) -> list[str]:
        """Every host object of `ctid` this driver would make (mounts, loop devices, qgroups...)."""
        return []

    def volumes(self) -> set[int]:
        """Every CTID that has anything in this pool (volume, mount point, snapshots)."""
        found: set[int] = set()
        for sub, suffix in self.VOLUME_DIRS:
            try:
                names = os.listdir(os.path.join(self.pool.path, sub))
            except FileNotFoundError:
                continue
            found |= {int(n.removesuffix(suffix)) for n in names
                      if n.endswith(suffix) and n.removesuffix(suffix).isdigit()}
        return found

    # -- second level -------------------------------------------------------------------------
    def set_ugid_quota(
        self, ctid: int, kind: str, ident: int, blocks: tuple[int, int], inodes: tuple[int, int], *, limit: int = 0
    ) -> None:
        raise NotSupported(f"{self.name}: user/group quota (quotaugidlimit)")

    def ugid_report(self, ctid: int, kind: str) -> list[dict[str, int]]:
        raise NotSupported(f"{self.name}: user/group quota (quotaugidlimit)")

    # -- snapshots ----------------------------------------------------------------------------
    def snapshot_dir(self, ctid: int) -> str:
        """Where a driver with snapshots keeps those of `ctid`: `<name>` plus `<name>.json`."""
        return os.path.join(self.pool.path, "snapshots", str(check_ctid(ctid)))

    def _record_snapshot(self, ctid: int, name: str) -> Snapshot:
        snap = Snapshot(name, time.time())
        write_json(os.path.join(ensure_dir(self.snapshot_dir(ctid)), f"{name}.json"), {"created": snap.created})
        return snap

    def _forget_snapshot(self, ctid: int, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.snapshot_dir(ctid), f"{name}.json"))

    def _snapshot_meta(self, ctid: int, name: str) -> Snapshot:
        try:
            data = read_json(os.path.join(self.snapshot_dir(ctid), f"{check_snapshot_name(name)}.json"))
        except NotFound:
            raise NotFound(f"CT {ctid}: no snapshot {name!r}") from None
        return Snapshot(name, float(data["created"]))

    def snapshot_create(self, ctid: int, name: str, quiesce: Quiesce) -> Snapshot:
        raise NotSupported(f"{self.name}: snapshots")

    def snapshot_list(self, ctid: int) -> list[Snapshot]:
        if not self.capabilities.snapshots:
            raise NotSupported(f"{self.name}: snapshots")
        try:
            names = os.listdir(self.snapshot_dir(ctid))
        except FileNotFoundError:
            return []
        snaps = [self._snapshot_meta(ctid, n[:-5]) for n in names if n.endswith(".json") and not n.startswith(".")]
        return sorted(snaps, key=lambda s: (s.created, s.name))

    def snapshot_delete(self, ctid: int, name: str) -> None:
        raise NotSupported(f"{self.name}: snapshots")

    def snapshot_rollback(self, ctid: int, name: str) -> None:
        """Make the volume what it was at snapshot `name` (VPS stopped and volume inactive)."""
        raise NotSupported(f"{self.name}: snapshots")

    @contextlib.contextmanager
    def snapshot_view(self, ctid: int, name: str) -> Iterator[str]:
        """A read-only host path showing snapshot `name`, for the length of the block."""
        raise NotSupported(f"{self.name}: snapshots")
        yield ""  # pragma: no cover

    @contextlib.contextmanager
    def consistent_view(self, ctid: int, quiesce: Quiesce) -> Iterator[str]:
        """A host path with a point-in-time view of the volume (backups read it).

        With snapshots: quiesce only while a temporary snapshot is taken, then read the
        snapshot. Without: the VPS stays quiesced while the caller reads the live root.
        """
        if not self.capabilities.snapshots:
            with quiesce():
                yield self.root(check_ctid(ctid))
            return
        name = f"backup-{os.getpid()}"
        self.snapshot_create(ctid, name, quiesce)
        try:
            with self.snapshot_view(ctid, name) as path:
                yield path
        finally:
            self.snapshot_delete(ctid, name)
