"""cgroup v2 (unified hierarchy): production nodes and the VM test host."""

from __future__ import annotations

import os

from kernel.cgroups.base import CgroupDriver, CgroupPaths, delegate_tree, wait_until
from kernel.cgroups.fs import CgroupFS


class V2Driver(CgroupDriver):
    version = 2
    capabilities = frozenset({"freeze", "kill", "delegate"})

    def __init__(self, prefix: str, mount: str = "/sys/fs/cgroup", fs: CgroupFS | None = None):
        super().__init__(prefix, fs)
        self.mount = mount

    def hierarchies(self) -> dict[str, str]:
        return {"unified": self.mount}

    def hierarchy_of(self, controller: str) -> str:
        return "unified"

    def _outer(self, ctid: int) -> str:
        return self.paths(ctid).outer["unified"]

    def _inner(self, ctid: int) -> str:
        return self.paths(ctid).inner["unified"]

    def _enable_controllers(self, parent: str) -> None:
        """Pass every controller the parent has down to its children (limits on outer)."""
        available = self.fs.read(os.path.join(parent, "cgroup.controllers")).split()
        enabled = set(self.fs.read(os.path.join(parent, "cgroup.subtree_control")).split())
        missing = [c for c in available if c not in enabled]
        if missing:
            self.fs.write(
                os.path.join(parent, "cgroup.subtree_control"),
                " ".join(f"+{c}" for c in missing) + "\n",
            )

    def ensure(self, ctid: int) -> CgroupPaths:
        paths = self.paths(ctid)
        top = os.path.join(self.mount, self.prefix)
        self.fs.mkdir(top)
        self._enable_controllers(self.mount)
        self._enable_controllers(top)
        self.fs.mkdir(self._outer(ctid))
        self._enable_controllers(self._outer(ctid))
        self.fs.mkdir(self._inner(ctid))
        return paths

    def pids(self, ctid: int) -> list[int]:
        return self._procs(self._outer(ctid))

    def _events(self, path: str) -> dict[str, str]:
        text = self.fs.read(os.path.join(path, "cgroup.events"))
        return dict(line.split(None, 1) for line in text.splitlines() if " " in line)

    def populated(self, ctid: int) -> bool:
        if not self.fs.exists(self._outer(ctid)):
            return False
        return self._events(self._outer(ctid)).get("populated", "0").strip() == "1"

    def freeze(self, ctid: int, timeout: float = 10.0) -> None:
        outer = self._outer(ctid)
        self.fs.write(os.path.join(outer, "cgroup.freeze"), "1\n")
        wait_until(lambda: self.frozen(ctid), timeout, f"CT {ctid} did not freeze")

    def thaw(self, ctid: int) -> None:
        self.fs.write(os.path.join(self._outer(ctid), "cgroup.freeze"), "0\n")

    def frozen(self, ctid: int) -> bool:
        return self._events(self._outer(ctid)).get("frozen", "0").strip() == "1"

    def kill(self, ctid: int, timeout: float = 10.0) -> None:
        outer = self._outer(ctid)
        if not self.fs.exists(outer):
            return
        self.fs.write(os.path.join(outer, "cgroup.kill"), "1\n")
        wait_until(lambda: not self.populated(ctid), timeout, f"CT {ctid} processes survived kill")

    def delegate(self, ctid: int, uid: int, gid: int) -> None:
        delegate_tree(self.fs, self._inner(ctid), uid, gid)
