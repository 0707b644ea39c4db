"""The cgroup driver interface: one per cgroup version, the same small set of verbs.

Layout per VPS, under a configurable prefix, in every hierarchy::

    <prefix>/<ctid>        outer: limits live here; the VPS cannot write it
    <prefix>/<ctid>/vps    inner: the VPS's processes; the root of its cgroup namespace

The VPS sees only the inner cgroup (cgroup namespace). On v2 the inner cgroup
may be delegated to the VPS root; on v1 nothing is ever delegated.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from kernel.cgroups.fs import CgroupFS, RealFS
from kernel.config import check_ctid
from kernel.errors import InvalidArgument, NotSupported, Timeout

INNER = "vps"
# Files a delegated VPS root may write in its inner cgroup (cgroups(7), "Delegation").
DELEGATED_FILES = ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control")


@dataclass(frozen=True)
class CgroupPaths:
    """Absolute paths of one VPS's cgroups, keyed by hierarchy name."""

    outer: dict[str, str]
    inner: dict[str, str]


class CgroupDriver:
    """Base driver; operations a version cannot do raise `NotSupported`."""

    version: int = 0
    #: capabilities as data: "freeze", "kill", "delegate"
    capabilities: frozenset[str] = frozenset()

    def __init__(self, prefix: str, fs: CgroupFS | None = None) -> None:
        if not prefix or "/" in prefix or prefix in (".", ".."):
            raise InvalidArgument(f"bad cgroup prefix: {prefix!r}")
        self.prefix = prefix
        self.fs: CgroupFS = fs or RealFS()
        self._paths: dict[int, CgroupPaths] = {}  # a VPS's paths never change for a driver

    # -- naming ------------------------------------------------------------------
    def hierarchies(self) -> dict[str, str]:
        """Hierarchy name → mount point."""
        raise NotSupported("no cgroup hierarchies")

    def paths(self, ctid: int) -> CgroupPaths:
        """Computed once per CTID (every verb asks; on v1 that is a dozen hierarchies each time)."""
        found = self._paths.get(ctid)
        if found is None:
            check_ctid(ctid)
            outer = {h: os.path.join(m, self.prefix, str(ctid)) for h, m in self.hierarchies().items()}
            found = self._paths[ctid] = CgroupPaths(outer, {h: os.path.join(p, INNER) for h, p in outer.items()})
        return CgroupPaths(dict(found.outer), dict(found.inner))

    def hierarchy_of(self, controller: str) -> str:
        """The hierarchy name whose cgroups hold `controller`'s files; `NotFound` if not mounted."""
        raise NotSupported(f"cgroup v{self.version}: controller {controller}")

    def top_dir(self, controller: str) -> str:
        """The prefix cgroup (parent of every VPS's outer cgroup) in `controller`'s hierarchy."""
        return os.path.join(self.hierarchies()[self.hierarchy_of(controller)], self.prefix)

    def controller_dir(self, ctid: int, controller: str, *, inner: bool = False) -> str:
        """The VPS cgroup with `controller`'s files: the outer one (limits) unless `inner`."""
        paths = self.paths(ctid)
        return (paths.inner if inner else paths.outer)[self.hierarchy_of(controller)]

    def ctids(self) -> list[int]:
        """CTIDs that have a cgroup under the prefix (any hierarchy), sorted."""
        found: set[int] = set()
        for mount in self.hierarchies().values():
            found.update(int(n) for n in self.fs.subdirs(os.path.join(mount, self.prefix)) if n.isdigit())
        return sorted(found)

    # -- verbs -------------------------------------------------------------------
    def ensure(self, ctid: int) -> CgroupPaths:
        """Create the outer and inner cgroups if missing (idempotent)."""
        raise NotSupported(f"cgroup v{self.version}: ensure")

    def exists(self, ctid: int) -> bool:
        return any(self.fs.exists(p) for p in self.paths(ctid).outer.values())

    def attach(self, ctid: int, pid: int) -> None:
        """Move process `pid` (0 = the caller) into the VPS's inner cgroups."""
        for path in self.paths(ctid).inner.values():
            self.fs.write(os.path.join(path, "cgroup.procs"), f"{pid}\n")

    def pids(self, ctid: int) -> list[int]:
        """Every process in the VPS's cgroups, nested ones included."""
        raise NotSupported(f"cgroup v{self.version}: pids")

    def freeze(self, ctid: int, timeout: float = 10.0) -> None:
        raise NotSupported(f"cgroup v{self.version}: freeze")

    def thaw(self, ctid: int) -> None:
        raise NotSupported(f"cgroup v{self.version}: thaw")

    def frozen(self, ctid: int) -> bool:
        raise NotSupported(f"cgroup v{self.version}: frozen")

    def kill(self, ctid: int, timeout: float = 10.0) -> None:
        """SIGKILL every process of the VPS and wait until none is left."""
        raise NotSupported(f"cgroup v{self.version}: kill")

    def delegate(self, ctid: int, uid: int, gid: int) -> None:
        raise NotSupported(f"cgroup v{self.version}: delegation")

    def remove(self, ctid: int) -> None:
        """Remove the VPS's cgroups, nested ones first (idempotent). They must be empty."""
        for outer in self.paths(ctid).outer.values():
            self._rmtree(outer)

    # -- helpers -----------------------------------------------------------------
    def _walk(self, path: str) -> list[str]:
        """`path` and every cgroup below it, parents before children."""
        out = [path]
        for name in self.fs.subdirs(path):
            out.extend(self._walk(os.path.join(path, name)))
        return out

    def _rmtree(self, path: str) -> None:
        for sub in reversed(self._walk(path)):
            self.fs.rmdir(sub)

    def _procs(self, root: str) -> list[int]:
        found: list[int] = []
        for path in self._walk(root):
            if not self.fs.exists(path):
                continue
            text = self.fs.read(os.path.join(path, "cgroup.procs"))
            found.extend(int(line) for line in text.split())
        return found


def delegate_tree(fs: CgroupFS, inner: str, uid: int, gid: int) -> None:
    """Hand the inner cgroup to the VPS root: it may make children and move its processes."""
    fs.chown(inner, uid, gid)
    for name in DELEGATED_FILES:
        fs.chown(os.path.join(inner, name), uid, gid)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate()` with a short back-off until true or `Timeout`."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not predicate():
        if time.monotonic() > deadline:
            raise Timeout(what)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
