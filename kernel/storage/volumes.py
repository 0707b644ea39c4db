"""A node's storage: its pools, and each VPS's volume (which pool, which limits).

`Storage` is what the runtime, the node worker and vzctl call. It keeps one
small state file per volume, `<state_root>/storage/<ctid>.json` (pool and
limits), and routes every operation to the pool's driver. Pools come from
`<state_root>/storage.json`::

    {"default": "fast",
     "backup_dir": "/srv/backup/node1",
     "pools": [{"name": "fast", "driver": "btrfs", "path": "/vz/btrfs"},
               {"name": "img", "driver": "image", "path": "/vz/images",
                "options": {"default_size": "10737418240"}}]}

Without that file the node has one `dir` pool, `default`, at the runtime's
private directory: exactly what the runtime did before pools existed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from kernel import vpsfiles
from kernel.config import NodeConfig, check_ctid
from kernel.errors import AlreadyExists, InvalidArgument, NotFound, NotSupported
from kernel.reverter import Reverter
from kernel.statefile import ensure_dir, read_json, remove, write_json
from kernel.storage import drivers
from kernel.storage.base import Driver, Limits, PoolConfig, Quiesce, Snapshot, Usage, no_quiesce
from kernel.templates import TemplateCache

CONFIG_FILE = "storage.json"
CLAIM_FILE = ".ctpanel-node"  # in each pool: the node whose pool it is
QUOTA_DIR = "/var/lib/ctpanel/quota"


@dataclass(frozen=True)
class StorageConfig:
    pools: tuple[PoolConfig, ...]
    default: str
    backup_dir: str

    def __post_init__(self) -> None:
        names = [p.name for p in self.pools]
        if len(set(names)) != len(names):
            raise InvalidArgument("pool names must be unique")
        if self.default not in names:
            raise InvalidArgument(f"default pool {self.default!r} is not configured")
        if not os.path.isabs(self.backup_dir):
            raise InvalidArgument("backup_dir must be absolute")

    @classmethod
    def for_node(cls, config: NodeConfig) -> StorageConfig:
        """The node's storage.json, or a single `dir` pool at the private directory."""
        try:
            data = read_json(config.path(CONFIG_FILE))
        except NotFound:
            return cls(
                pools=(PoolConfig("default", "dir", config.private_dir),),
                default="default",
                backup_dir=config.path("backup"),
            )
        pools = tuple(
            PoolConfig(str(p["name"]), str(p["driver"]), str(p["path"]), dict(p.get("options", {})))
            for p in data["pools"]
        )
        return cls(pools, str(data.get("default", pools[0].name)), str(data.get("backup_dir", config.path("backup"))))

    def to_json(self) -> dict[str, object]:
        """The storage.json form (what `for_node` reads)."""
        return {
            "default": self.default,
            "backup_dir": self.backup_dir,
            "pools": [{"name": p.name, "driver": p.driver, "path": p.path, "options": dict(p.options)}
                      for p in self.pools],
        }


@dataclass(frozen=True)
class Volume:
    ctid: int
    pool: str
    driver: str
    limits: Limits
    root: str


@dataclass(frozen=True)
class QuotaFile:
    """One id's second-level quota file inside the VPS (`Storage.publish_quota`)."""

    path: str
    text: str
    mode: int
    uid: int
    gid: int


class Storage:
    """One node's pools and volumes. Holds no per-VPS state in memory."""

    def __init__(
        self, config: NodeConfig, storage: StorageConfig | None = None, templates: TemplateCache | None = None
    ) -> None:
        self.config = config
        self.storage = storage or StorageConfig.for_node(config)
        self.templates = templates or TemplateCache(config)
        self.pools: dict[str, Driver] = {p.name: drivers.load(p) for p in self.storage.pools}
        self._dir = ensure_dir(config.path("storage"))

    def setup(self) -> None:
        """Make every pool ready (the set-up and the node worker's start call this) and claim it
        for this node, unless another node has: then its volumes are never listed as ours."""
        for driver in self.pools.values():
            driver.setup()
            claim = os.path.join(driver.pool.path, CLAIM_FILE)
            if not os.path.exists(claim):
                write_json(claim, {"node": self.config.node})

    def _ours(self, driver: Driver) -> bool:
        try:
            return read_json(os.path.join(driver.pool.path, CLAIM_FILE)).get("node") == self.config.node
        except NotFound:
            return False

    def volumes(self) -> set[int]:
        """Every CTID with a volume record or anything in a pool this node claimed (reconcile's view)."""
        found = {int(n[:-5]) for n in os.listdir(self._dir) if n.endswith(".json") and n[:-5].isdigit()}
        for driver in self.pools.values():
            if self._ours(driver):
                found |= driver.volumes()
        return found

    def destroy_orphan(self, ctid: int) -> None:
        """Remove whatever this node's pools hold for `ctid`, with or without its volume record."""
        self.destroy(ctid)
        for driver in self.pools.values():
            if self._ours(driver) and ctid in driver.volumes():
                driver.destroy(ctid)

    def save_config(self) -> None:
        """Record the pools in <state_root>/storage.json, so the node's CLIs (vzctl, vzlist, vzquota)
        see the same pools as the node worker that was given them in its environment."""
        path = self.config.path(CONFIG_FILE)
        try:
            if read_json(path) == self.storage.to_json():
                return
        except NotFound:
            pass
        write_json(path, self.storage.to_json())

    def pool(self, name: str | None = None) -> Driver:
        name = name or self.storage.default
        try:
            return self.pools[name]
        except KeyError:
            raise NotFound(f"no storage pool {name!r} on node {self.config.node}") from None

    # -- volume records -----------------------------------------------------------------------
    def _state(self, ctid: int) -> str:
        return os.path.join(self._dir, f"{check_ctid(ctid)}.json")

    def find(self, ctid: int) -> Volume | None:
        try:
            data = read_json(self._state(ctid))
        except NotFound:
            return None
        driver = self.pool(str(data["pool"]))
        return Volume(ctid, driver.pool.name, driver.name, Limits.from_json(data["limits"]), driver.root(ctid))

    def get(self, ctid: int) -> Volume:
        volume = self.find(ctid)
        if volume is None:
            raise NotFound(f"CT {ctid} has no volume")
        return volume

    def _driver(self, ctid: int) -> Driver:
        return self.pool(self.get(ctid).pool)

    def _save(self, ctid: int, pool: str, limits: Limits) -> None:
        write_json(self._state(ctid), {"pool": pool, "limits": limits.to_json()})

    # -- lifecycle ----------------------------------------------------------------------------
    def create(self, ctid: int, template: str | None, limits: Limits, pool: str | None = None) -> str:
        """Make the volume (from `template`, or empty when None) and activate it; return its root."""
        driver = self.pool(pool)
        if self.find(ctid) is not None:
            raise AlreadyExists(f"CT {ctid} already has a volume")
        source = None
        if template is not None:
            tpl = self.templates.get(template)
            # A native template was built from a verified tarball: no need to hash it again.
            if not driver.template_ready(template, tpl.meta.checksum):
                tpl = self.templates.verify(template)
                if driver.capabilities.native_templates:
                    driver.prepare_template(template, tpl.tarball, tpl.meta.checksum)
            source = (template, tpl.tarball, tpl.meta.checksum)
        with Reverter() as revert:
            driver.create(ctid, source, limits)
            revert.add(lambda: driver.destroy(ctid), "destroy volume")
            self._save(ctid, driver.pool.name, limits)
            revert.add(lambda: remove(self._state(ctid)), "forget volume")
            root = driver.activate(ctid, limits)
            revert.success()
            return root

    def activate(self, ctid: int) -> str:
        """Ensure the root is available on the host (mounted for `image`); return its path."""
        volume = self.get(ctid)
        return self.pool(volume.pool).activate(ctid, volume.limits)

    def deactivate(self, ctid: int) -> None:
        self._driver(ctid).deactivate(ctid)

    def active(self, ctid: int) -> bool:
        return self._driver(ctid).active(ctid)

    def destroy(self, ctid: int) -> None:
        """Remove the volume, its snapshots and every host object of it. Idempotent."""
        volume = self.find(ctid)
        if volume is not None:
            self.pool(volume.pool).destroy(ctid)
        remove(self._state(ctid))

    def leftovers(self, ctid: int) -> list[str]:
        found = [item for driver in self.pools.values() for item in driver.leftovers(ctid)]
        if os.path.exists(self._state(ctid)):
            found.append("storage state")
        return found

    # -- limits -------------------------------------------------------------------------------
    def set_limits(self, ctid: int, limits: Limits) -> Limits:
        """`vzctl set --diskspace --diskinodes --quotaugidlimit`: applied at once where the driver can."""
        volume = self.get(ctid)
        self.pool(volume.pool).set_limits(ctid, volume.limits, limits)
        self._save(ctid, volume.pool, limits)
        return limits

    def usage(self, ctid: int) -> Usage:
        return self._driver(ctid).usage(ctid)

    # -- second level -------------------------------------------------------------------------
    def set_ugid_quota(
        self, ctid: int, kind: str, ident: int, blocks: tuple[int, int], inodes: tuple[int, int] = (0, 0)
    ) -> None:
        """`vzquota setlimit`-style: limits for one user/group id of the VPS (bytes, inodes)."""
        volume = self.get(ctid)
        if not volume.limits.quotaugidlimit:
            raise NotSupported(f"CT {ctid}: quotaugidlimit is 0 (second-level quota off)")
        self.pool(volume.pool).set_ugid_quota(
            ctid, kind, ident, blocks, inodes, limit=volume.limits.quotaugidlimit
        )
        self.publish_quota(ctid)

    def ugid_report(self, ctid: int, kind: str) -> list[dict[str, int]]:
        return self._driver(ctid).ugid_report(ctid, kind)

    def quota_files(self, ctid: int) -> list[QuotaFile]:
        """Each id's quota file as `publish_quota` writes it, from the volume's report (repquota
        for users and groups: the slow part, which reads only and needs no VPS lock)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        files = []
        for kind in ("user", "group"):
            for row in self.ugid_report(ctid, kind):
                text = f"# ctpanel second-level quota of {kind} {row['id']}, {stamp}\n" + "".join(
                    f"{key}={row[key]}\n" for key in ("bytes", "bsoft", "bhard", "inodes", "isoft", "ihard")
                )
                uid, gid, mode = (row["id"], 0, 0o400) if kind == "user" else (0, row["id"], 0o440)
                files.append(QuotaFile(f"{QUOTA_DIR}/{kind}.{row['id']}", text, mode, uid, gid))
        return files

    def publish_quota(self, ctid: int, files: list[QuotaFile] | None = None) -> int:
        """Write each id's own usage and limits into the VPS, readable by that id only.

        `/var/lib/ctpanel/quota/user.<uid>` (mode 0400, owned by the user) and
        `group.<gid>` (0440, group-owned), `key=value` lines. quotactl(2) itself cannot
        answer inside: the kernel looks quota up by host id, while the files carry
        the VPS's own ids. `files`: `quota_files` read before by the caller. Returns the
        number of files written.
        """
        root = self.activate(ctid)
        files = self.quota_files(ctid) if files is None else files
        with vpsfiles.VpsRoot(root) as vps:
            vps.makedirs(QUOTA_DIR)
            for file in files:
                vps.write(file.path, file.text, mode=file.mode, uid=file.uid, gid=file.gid)
        return len(files)

    # -- snapshots ----------------------------------------------------------------------------
    def snapshot_create(self, ctid: int, name: str, quiesce: Quiesce = no_quiesce) -> Snapshot:
        return self._driver(ctid).snapshot_create(ctid, name, quiesce)

    def snapshot_list(self, ctid: int) -> list[Snapshot]:
        return self._driver(ctid).snapshot_list(ctid)

    def snapshot_delete(self, ctid: int, name: str) -> None:
        self._driver(ctid).snapshot_delete(ctid, name)

    def snapshot_rollback(self, ctid: int, name: str) -> None:
        """The VPS must be stopped; the volume is deactivated first."""
        driver = self._driver(ctid)
        driver.deactivate(ctid)
        driver.snapshot_rollback(ctid, name)
