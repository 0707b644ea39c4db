"""Cgroup drivers: naming and layout against a fake filesystem, then the real v1 and v2 here."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time

import pytest

from kernel import cgroups
from kernel.errors import InvalidArgument, KernelError, NotSupported, Timeout


class FakeFS:
    """Just enough cgroupfs: directories, files with values, chown records."""

    def __init__(self, files: dict[str, str] | None = None, dirs: set[str] | None = None):
        self.files = dict(files or {})
        self.dirs = set(dirs or ())
        self.owners: dict[str, tuple[int, int]] = {}
        self.writes: list[tuple[str, str]] = []

    def read(self, path):
        return self.files[path]

    def write(self, path, value):
        self.writes.append((path, value))
        self.files[path] = value

    def mkdir(self, path):
        self.dirs.add(path)

    def rmdir(self, path):
        self.dirs.discard(path)

    def exists(self, path):
        return path in self.dirs

    def subdirs(self, path):
        return sorted(d.rsplit("/", 1)[1] for d in self.dirs if d.rsplit("/", 1)[0] == path)

    def chown(self, path, uid, gid):
        self.owners[path] = (uid, gid)


MOUNTINFO_HYBRID = """\
25 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 29 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset,clone_children
33 30 0:29 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
34 30 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd,release_agent=/x
35 30 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
"""
MOUNTINFO_V2 = "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"


@pytest.mark.unit
def test_detect_hybrid_and_pure_v2():
    driver = cgroups.detect("p", FakeFS(), MOUNTINFO_HYBRID)
    assert isinstance(driver, cgroups.V1Driver)
    assert driver.hierarchies() == {
        "cpu": "/sys/fs/cgroup/cpu",
        "cpuset": "/sys/fs/cgroup/cpuset",
        "freezer": "/sys/fs/cgroup/freezer",
        "name=systemd": "/sys/fs/cgroup/systemd",
        "unified": "/sys/fs/cgroup/unified",
    }
    v2 = cgroups.detect("p", FakeFS(), MOUNTINFO_V2)
    assert isinstance(v2, cgroups.V2Driver) and v2.mount == "/sys/fs/cgroup"
    with pytest.raises(NotSupported):
        cgroups.detect("p", FakeFS(), "25 1 254:0 / / rw - ext4 /dev/vda rw\n")


@pytest.mark.unit
@pytest.mark.parametrize("prefix", ["", "a/b", "..", "."])
def test_bad_prefix(prefix):
    with pytest.raises(InvalidArgument):
        cgroups.V2Driver(prefix, fs=FakeFS())


@pytest.mark.unit
def test_v1_layout_copies_cpuset_and_is_idempotent():
    fs = FakeFS({"/cg/cpuset/cpuset.cpus": "0-1\n", "/cg/cpuset/cpuset.mems": "0\n"}, {"/cg/cpuset", "/cg/memory"})
    driver = cgroups.V1Driver("ctp", {"cpuset": "/cg/cpuset", "memory": "/cg/memory"}, fs=fs)
    paths = driver.ensure(101)
    assert paths.outer == {"cpuset": "/cg/cpuset/ctp/101", "memory": "/cg/memory/ctp/101"}
    assert paths.inner["memory"] == "/cg/memory/ctp/101/vps"
    for level in ("ctp", "ctp/101", "ctp/101/vps"):
        assert fs.files[f"/cg/cpuset/{level}/cpuset.cpus"] == "0-1\n"
        assert fs.files[f"/cg/cpuset/{level}/cpuset.mems"] == "0\n"
    writes = len(fs.writes)
    driver.ensure(101)
    assert len(fs.writes) == writes
    with pytest.raises(NotSupported):
        driver.delegate(101, 1, 1)
    driver.remove(101)
    assert fs.dirs == {"/cg/cpuset", "/cg/memory", "/cg/cpuset/ctp", "/cg/memory/ctp"}


@pytest.mark.unit
def test_v2_enables_controllers_and_delegates_inner_only():
    fs = FakeFS(
        {
            "/cg/cgroup.controllers": "cpu memory pids\n",
            "/cg/cgroup.subtree_control": "memory\n",
            "/cg/ctp/cgroup.controllers": "cpu memory pids\n",
            "/cg/ctp/cgroup.subtree_control": "",
            "/cg/ctp/101/cgroup.controllers": "cpu memory pids\n",
            "/cg/ctp/101/cgroup.subtree_control": "",
        },
        {"/cg"},
    )
    driver = cgroups.V2Driver("ctp", "/cg", fs)
    driver.ensure(101)
    assert ("/cg/cgroup.subtree_control", "+cpu +pids\n") in fs.writes
    assert ("/cg/ctp/101/cgroup.subtree_control", "+cpu +memory +pids\n") in fs.writes
    driver.delegate(101, 1 << 30, 1 << 30)
    assert set(fs.owners) == {
        "/cg/ctp/101/vps",
        "/cg/ctp/101/vps/cgroup.procs",
        "/cg/ctp/101/vps/cgroup.threads",
        "/cg/ctp/101/vps/cgroup.subtree_control",
    }
    driver.attach(101, 42)
    assert fs.writes[-1] == ("/cg/ctp/101/vps/cgroup.procs", "42\n")


class OneTryFreezerFS(FakeFS):
    """The v1 freezer as it behaves towards a task it finds running (a vfork parent about to wait).

    Each FROZEN write tries every task once; that task is missed by the first
    write and caught by any later one, so the state stays FREEZING until then.
    """

    def write(self, path, value):
        super().write(path, value)
        if path.endswith("freezer.state") and value == "FROZEN\n":
            tries = sum(1 for p, v in self.writes if p == path and v == value)
            self.files[path] = "FROZEN\n" if tries > 1 else "FREEZING\n"


@pytest.mark.unit
def test_v1_freeze_writes_again_while_freezing():
    fs = OneTryFreezerFS({}, {"/cg/freezer"})
    driver = cgroups.V1Driver("ctp", {"freezer": "/cg/freezer"}, fs=fs)
    driver.ensure(101)
    driver.freeze(101, timeout=2.0)
    assert driver.frozen(101)


class NeverFrozenFS(FakeFS):
    """A freezer that stays FREEZING (a task in a sleep it cannot be frozen in)."""

    def read(self, path):
        return "FREEZING\n" if path.endswith("freezer.state") else super().read(path)


@pytest.mark.unit
def test_v1_freeze_that_does_not_complete_is_undone():
    """Left FREEZING, the frozen tasks would not even die of SIGKILL (stop thaws only FROZEN)."""
    fs = NeverFrozenFS({}, {"/cg/freezer"})
    driver = cgroups.V1Driver("ctp", {"freezer": "/cg/freezer"}, fs=fs)
    driver.ensure(101)
    with pytest.raises(Timeout):
        driver.freeze(101, timeout=0.2)
    assert fs.writes[-1] == ("/cg/freezer/ctp/101/freezer.state", "THAWED\n")


@pytest.mark.unit
def test_v1_kill_kills_when_the_freeze_does_not_complete():
    victim = subprocess.Popen(["sleep", "60"])

    class Stuck(NeverFrozenFS):
        def read(self, path):
            if path.endswith("cgroup.procs"):
                return "" if victim.poll() is not None else f"{victim.pid}\n"
            return super().read(path)

    fs = Stuck({}, {"/cg/freezer"})
    driver = cgroups.V1Driver("ctp", {"freezer": "/cg/freezer"}, fs=fs)
    driver.ensure(101)
    try:
        driver.kill(101, timeout=1.0)
        assert victim.poll() == -9
        assert fs.files["/cg/freezer/ctp/101/freezer.state"] == "THAWED\n"
    finally:
        victim.kill()
        victim.wait()


# -- the real hierarchies of this host ----------------------------------------------------------


def _drivers(prefix: str) -> dict[str, cgroups.CgroupDriver]:
    """v1 (as detected, cgroup.kill through the hybrid cgroup2), pure-v1 (freezer kill), v2."""
    with open("/proc/self/mountinfo") as fh:
        pure, v1, hybrid = cgroups.parse_mounts(fh.read())
    found: dict[str, cgroups.CgroupDriver] = {}
    if pure:
        found["2"] = cgroups.V2Driver(prefix, pure)
    if v1:
        found["1"] = cgroups.V1Driver(prefix, v1, hybrid)
        found["1-freezer"] = cgroups.V1Driver(prefix, v1, None)
    if hybrid and not pure:
        found["2"] = cgroups.V2Driver(prefix, hybrid)
    return found


@pytest.mark.kernel
@pytest.mark.parametrize("kind", ["1", "1-freezer", "2"])
def test_real_driver_verbs(kind, tmp_path):
    prefix = f"ctpanel-test-{os.getpid()}-cg{kind}"
    driver = _drivers(prefix).get(kind)
    if driver is None:
        pytest.fail(f"this host has no cgroup {kind} hierarchy; the kernel tier needs one (see docs/runtime.md)")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        driver.ensure(101)
        assert driver.exists(101)
        for _ in range(3):
            procs.append(subprocess.Popen(["sleep", "60"]))
            driver.attach(101, procs[-1].pid)
        assert sorted(driver.pids(101)) == sorted(p.pid for p in procs)
        ticker = tmp_path / "ticks"
        procs.append(subprocess.Popen(["sh", "-c", f"while :; do echo >> {ticker}; sleep 0.01; done"]))
        driver.attach(101, procs[-1].pid)
        deadline = time.monotonic() + 5
        while not ticker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        driver.freeze(101)
        assert driver.frozen(101)
        time.sleep(0.05)
        size = ticker.stat().st_size
        time.sleep(0.1)
        assert ticker.stat().st_size == size  # nothing runs while frozen
        driver.thaw(101)
        assert not driver.frozen(101)
        deadline = time.monotonic() + 10
        while ticker.stat().st_size == size and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ticker.stat().st_size > size
        driver.kill(101)
        assert driver.pids(101) == []
        for p in procs:
            p.wait(5)
        driver.remove(101)
        driver.remove(101)
        assert not driver.exists(101)
    finally:
        with contextlib.suppress(KernelError):
            driver.thaw(101)
        with contextlib.suppress(KernelError):
            driver.kill(101)
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        driver.remove(101)
        for mount in driver.hierarchies().values():
            if os.path.isdir(os.path.join(mount, prefix)):
                os.rmdir(os.path.join(mount, prefix))
