"""Where a node keeps its state and how it names its kernel objects."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from kernel.errors import InvalidArgument

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")

DEFAULT_STATE_ROOT = "/var/lib/ctpanel"
DEFAULT_IDMAP_REGISTRY = "/var/lib/ctpanel-idmap/ranges.json"
#: 2**30: far above /etc/subuid's usual 100000+ ranges and below the 2**32-1 sentinel.
DEFAULT_ID_BASE = 1 << 30


@dataclass(frozen=True)
class NodeConfig:
    """One node's identity and state locations. Two nodes on one machine differ in all but
    `idmap_registry`, which the machine shares so id ranges never overlap."""

    node: str = "local"
    state_root: str = DEFAULT_STATE_ROOT
    cgroup_prefix: str = "ctpanel"
    idmap_registry: str = DEFAULT_IDMAP_REGISTRY
    id_base: int = DEFAULT_ID_BASE

    def __post_init__(self) -> None:
        for label, value in (("node", self.node), ("cgroup_prefix", self.cgroup_prefix)):
            if not _NAME.match(value):
                raise InvalidArgument(f"bad {label}: {value!r}")
        if not os.path.isabs(self.state_root) or not os.path.isabs(self.idmap_registry):
            raise InvalidArgument("state paths must be absolute")

    def path(self, *parts: str) -> str:
        return os.path.join(self.state_root, *parts)

    @property
    def registry_dir(self) -> str:
        return self.path("ct")

    @property
    def run_dir(self) -> str:
        """Runtime state (init pid, lock files, mount staging); stale after a reboot."""
        return self.path("run")

    @property
    def lxcfs_mount(self) -> str:
        """Where this node's own lxcfs is mounted (by its supervisor): one per node, never a
        machine-wide lxcfs that another node or the distribution's service may restart."""
        return self.path("run", "lxcfs")

    @property
    def private_dir(self) -> str:
        """VPS volumes (OpenVZ's /vz/private); root-owned 0700 so host users cannot reach them."""
        return self.path("private")

    @property
    def template_dir(self) -> str:
        return self.path("templates")


def check_ctid(ctid: int) -> int:
    """CTIDs are positive integers (OpenVZ reserves 0 and 1 for the host)."""
    if not isinstance(ctid, int) or isinstance(ctid, bool) or not 100 <= ctid <= 2**31 - 1:
        raise InvalidArgument(f"bad CTID: {ctid!r} (100..2147483647)")
    return ctid
