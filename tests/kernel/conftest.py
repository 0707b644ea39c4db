"""Fixtures for kernel/ tests: a private node (state root, cgroup prefix, id registry) per session.

Every VPS a test makes goes through `make_vps`, whose finalizer stops and
destroys it even when the test failed; the session finalizer then checks
that no cgroup, mount, process or registry entry of the test node is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

import pytest

from kernel import cgroups
from kernel import syscalls as sc
from kernel.config import NodeConfig
from kernel.errors import KernelError
from kernel.runtime import CreateSpec, Runtime, StartOptions
from tests.kernel import leftovers


@pytest.fixture(scope="session")
def node_config() -> Iterator[NodeConfig]:
    top = tempfile.mkdtemp(prefix="ctpanel-test-")
    config = NodeConfig(
        node=f"test{os.getpid()}",
        state_root=os.path.join(top, "state"),
        cgroup_prefix=f"ctpanel-test-{os.getpid()}",
        idmap_registry=os.path.join(top, "idmap", "ranges.json"),
        # Each session has its own id registry, so concurrent sessions (two checkouts, CI beside
        # a developer) get disjoint windows of 64 ranges from their PID: a leftover process
        # found by its host uid is then surely this session's.
        id_base=(1 << 30) + (os.getpid() % 700) * 64 * 65536,
    )
    try:
        yield config
    finally:
        driver = cgroups.detect(config.cgroup_prefix)
        _kill_leftover_vpss(driver)
        for mount in driver.hierarchies().values():
            path = os.path.join(mount, config.cgroup_prefix)
            for sub in sorted((d for d, _, _ in os.walk(path)), key=len, reverse=True):
                with contextlib.suppress(OSError):
                    os.rmdir(sub)
        shutil.rmtree(top, ignore_errors=True)


def _kill_leftover_vpss(driver: cgroups.CgroupDriver) -> None:
    """Only this session's own prefix: a VPS a crashed test left running dies here."""
    ctids: set[int] = set()
    for mount in driver.hierarchies().values():
        with contextlib.suppress(OSError):
            ctids |= {int(n) for n in os.listdir(os.path.join(mount, driver.prefix)) if n.isdigit()}
    for ctid in ctids:
        with contextlib.suppress(KernelError):
            if "freeze" in driver.capabilities:
                driver.thaw(ctid)
        with contextlib.suppress(KernelError):
            driver.kill(ctid)
            driver.remove(ctid)


@pytest.fixture(scope="session")
def subreaper() -> None:
    """VPS inits are reparented to pytest, so stop() can reap them (the supervisor's role)."""
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)


@pytest.fixture(scope="session")
def runtime(node_config: NodeConfig, subreaper: None) -> Runtime:
    rt = Runtime(node_config, lxcfs=None)  # deterministic /proc whether or not the node runs lxcfs
    rt.templates.ensure_busybox()
    return rt


_next_ctid = iter(range(1000, 100000))


@pytest.fixture
def make_vps(runtime: Runtime) -> Iterator[Callable[..., int]]:
    """make_vps(start=True, hostname=..., options=...) -> CTID; cleaned up after the test."""
    made: list[int] = []
    ranges: dict[int, int] = {}

    def make(
        *, start: bool = True, hostname: str = "", options: StartOptions | None = None
    ) -> int:
        ctid = next(_next_ctid)
        made.append(ctid)
        ranges[ctid] = runtime.create(CreateSpec(ctid=ctid, template="busybox", hostname=hostname)).id_start
        if start:
            runtime.start(ctid, options)
        return ctid

    yield make
    for ctid in made:
        leftovers.force_remove(runtime, ctid)
    for ctid in made:
        assert leftovers.of(runtime, ctid, ranges.get(ctid)) == [], f"CT {ctid} left things behind"


@pytest.fixture
def unsafe_testing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Allow switching defences off (negative controls)."""
    monkeypatch.setenv("CTPANEL_UNSAFE_TESTING", "1")
