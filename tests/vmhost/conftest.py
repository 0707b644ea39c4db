"""Fixtures for tests that run inside the vm tier's guest (see docs/vm-tier.md)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel import cgroups
from kernel import syscalls as sc
from kernel.config import NodeConfig
from kernel.runtime import Runtime
from kernel.storage.base import PoolConfig
from kernel.storage.volumes import Storage, StorageConfig
from tests.kernel import leftovers

CGROUP_ROOT = Path("/sys/fs/cgroup")


def in_vm() -> bool:
    return os.environ.get("CTPANEL_VM") == "1"


@pytest.fixture(autouse=True)
def _only_inside_the_vm(request: pytest.FixtureRequest) -> None:
    # These tests mount, mkswap and OOM-kill: never on a developer's host.
    if request.node.get_closest_marker("vm") and not in_vm():
        pytest.fail("a vm-tier test runs only inside the VM: python -m tests.vmhost "
                    f"{request.node.nodeid}")


@pytest.fixture
def scratch() -> Path:
    """The guest's writable ext4 scratch disk (TMPDIR is on it too)."""
    return Path(os.environ["CTPANEL_VM_SCRATCH"])


@pytest.fixture
def busybox_rootfs() -> Path:
    return Path(os.environ["CTPANEL_VM_BUSYBOX_ROOTFS"])


@pytest.fixture
def cgroup() -> Iterator[Path]:
    """A fresh child of the root cgroup; its processes are killed and it is removed after."""
    path = CGROUP_ROOT / f"vmtest-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        yield path
    finally:
        if path.exists():
            (path / "cgroup.kill").write_text("1\n")
            # A bound, not a timing assertion: emulation makes the kill slow.
            deadline = time.monotonic() + 60
            while "populated 1" in (path / "cgroup.events").read_text():
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            path.rmdir()


@contextlib.contextmanager
def vm_runtime(scratch: Path, ctid: int, *, image_pool: bool = False) -> Iterator[Runtime]:
    """A runtime of its own in the guest (state, id registry and cgroup prefix), with the busybox
    template; with `image_pool`, volumes are `image` ones. VPS `ctid` is force-removed after."""
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)  # as the supervisor: inits are ours to reap
    top = tempfile.mkdtemp(dir=scratch, prefix="runtime-")
    prefix = f"vmrt-{uuid.uuid4().hex[:8]}"
    config = NodeConfig(node="vm", state_root=os.path.join(top, "state"), cgroup_prefix=prefix,
                        idmap_registry=os.path.join(top, "ids", "ranges.json"))
    storage = None
    if image_pool:
        storage = Storage(config, StorageConfig((PoolConfig("img", "image", os.path.join(top, "img")),), "img",
                                                os.path.join(top, "backup")))
        storage.setup()
    runtime = Runtime(config, lxcfs=None, storage=storage)
    runtime.templates.ensure_busybox()
    try:
        yield runtime
    finally:
        leftovers.force_remove(runtime, ctid)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(cgroups.detect(prefix).hierarchies()["unified"], prefix))
        shutil.rmtree(top, ignore_errors=True)
