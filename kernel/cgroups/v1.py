"""cgroup v1 (one hierarchy per controller), as on this development host.

Nothing of v1 is ever delegated: the VPS cannot write any of its v1 cgroup
files. When the controller-less cgroup2 is mounted beside (hybrid layout),
the VPS also gets a cgroup there: it is used for `cgroup.kill`, and its inner
part is delegated and mounted at the VPS's /sys/fs/cgroup, so a systemd
guest can run as PID 1 (it holds no controller, so no limit is in it).
"""

from __future__ import annotations

import contextlib
import os
import signal

from kernel.cgroups.base import CgroupDriver, CgroupPaths, delegate_tree, wait_until
from kernel.cgroups.fs import CgroupFS
from kernel.errors import NotFound, Timeout


class V1Driver(CgroupDriver):
    version = 1
    capabilities = frozenset({"freeze", "kill"})

    def __init__(
        self,
        prefix: str,
        mounts: dict[str, str],
        unified: str | None = None,
        fs: CgroupFS | None = None,
    ):
        """`mounts`: hierarchy name ("memory", "cpu,cpuacct", "name=systemd") → mount point."""
        super().__init__(prefix, fs)
        self.mounts = dict(mounts)
        self.unified = unified
        if unified:
            self.capabilities = self.capabilities | {"delegate"}

    def hierarchies(self) -> dict[str, str]:
        found = dict(self.mounts)
        if self.unified:
            found["unified"] = self.unified
        return found

    def _controllers(self, name: str) -> set[str]:
        return set(name.split(","))

    def hierarchy_of(self, controller: str) -> str:
        for name in self.mounts:
            if controller in self._controllers(name):
                return name
        raise NotFound(f"the v1 {controller} controller is not mounted")

    def ensure(self, ctid: int) -> CgroupPaths:
        paths = self.paths(ctid)
        for name, mount in self.hierarchies().items():
            parent = mount
            for path in (os.path.join(mount, self.prefix), paths.outer[name], paths.inner[name]):
                fresh = not self.fs.exists(path)
                if fresh:
                    self.fs.mkdir(path)
                if fresh and "cpuset" in self._controllers(name):
                    # A new v1 cpuset is empty and refuses tasks until given cpus and mems.
                    for knob in ("cpuset.cpus", "cpuset.mems"):
                        value = self.fs.read(os.path.join(parent, knob))
                        self.fs.write(os.path.join(path, knob), value)
                parent = path
        return paths

    def _freezer(self, ctid: int) -> str:
        for name, path in self.paths(ctid).outer.items():
            if "freezer" in self._controllers(name):
                return path
        raise NotFound("the v1 freezer controller is not mounted")

    def _reference(self, ctid: int) -> str:
        """The hierarchy whose cgroup.procs lists the VPS's processes."""
        outer = self.paths(ctid).outer
        for name in ("freezer", "pids", "unified"):
            for key, path in outer.items():
                if name in self._controllers(key):
                    return path
        return next(iter(outer.values()))

    def pids(self, ctid: int) -> list[int]:
        return self._procs(self._reference(ctid))

    def freeze(self, ctid: int, timeout: float = 10.0) -> None:
        """Write FROZEN again while the cgroup is still FREEZING.

        The v1 freezer tries each task once per write. A task running at that
        moment gets a fake signal, which a sleep it enters next, killable but
        not interruptible, ignores: busybox init vforking a boot script (its
        child frozen, it waits in TASK_KILLABLE for the child's exec) stays
        FREEZING forever. A later write finds it asleep, freezable, and freezes it.
        A freeze that still does not complete is undone.
        """
        state = os.path.join(self._freezer(ctid), "freezer.state")

        def frozen_or_retry() -> bool:
            if self.frozen(ctid):
                return True
            self.fs.write(state, "FROZEN\n")
            return False

        self.fs.write(state, "FROZEN\n")
        try:
            wait_until(frozen_or_retry, timeout, f"CT {ctid} did not freeze")
        except Timeout:
            # Not left FREEZING: its frozen tasks would ignore even SIGKILL (cgroup.kill, stop).
            self.fs.write(state, "THAWED\n")
            raise

    def thaw(self, ctid: int) -> None:
        self.fs.write(os.path.join(self._freezer(ctid), "freezer.state"), "THAWED\n")

    def frozen(self, ctid: int) -> bool:
        return self.fs.read(os.path.join(self._freezer(ctid), "freezer.state")).strip() == "FROZEN"

    def kill(self, ctid: int, timeout: float = 10.0) -> None:
        if not self.exists(ctid):
            return
        outer = self.paths(ctid).outer
        if "unified" in outer and self.fs.exists(outer["unified"]):
            self.fs.write(os.path.join(outer["unified"], "cgroup.kill"), "1\n")
        else:
            self._kill_frozen(ctid, timeout)
        wait_until(lambda: not self.pids(ctid), timeout, f"CT {ctid} processes survived kill")

    def delegate(self, ctid: int, uid: int, gid: int) -> None:
        """Only the controller-less cgroup2 beside v1 (a systemd guest needs a writable tree)."""
        if not self.unified:
            super().delegate(ctid, uid, gid)
        delegate_tree(self.fs, self.paths(ctid).inner["unified"], uid, gid)

    def _kill_frozen(self, ctid: int, timeout: float) -> None:
        """Freeze so nothing forks away, SIGKILL every task, thaw so the signals land.

        A freeze that does not complete still kills: the caller waits for the
        tasks to go, and a cgroup left FREEZING would keep them.
        """
        try:
            with contextlib.suppress(Timeout):
                self.freeze(ctid, timeout)
            for pid in self.pids(ctid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            self.thaw(ctid)
