"""Fixtures for storage tests: a loop-file btrfs of our own, the three pools, VPSs on them.

Every volume goes through `make_volume`/`make_vps`, whose finalizers destroy it
and then assert that no loop device, mount, subvolume, qgroup or file of it
is left, even when the test failed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

import pytest

from kernel import syscalls as sc
from kernel.config import NodeConfig
from kernel.errors import KernelError
from kernel.run import run
from kernel.runtime import CreateSpec, Runtime
from kernel.storage import loop, mounts
from kernel.storage.base import Limits, PoolConfig
from kernel.storage.volumes import Storage, StorageConfig
from tests.kernel import leftovers

MiB = 1 << 20
_ctids = itertools.count(200000)


def next_ctid() -> int:
    """A CTID no other storage test uses."""
    return next(_ctids)


@pytest.fixture(scope="session")
def btrfs_mount() -> Iterator[str]:
    """A 3 GiB sparse loop file formatted btrfs and mounted (quota switched on by the pool)."""
    top = tempfile.mkdtemp(prefix="ctpanel-btrfs-")
    image, point = os.path.join(top, "pool.img"), os.path.join(top, "mnt")
    os.mkdir(point, 0o700)
    with open(image, "wb") as fh:
        fh.truncate(3 << 30)
    try:
        run(["mkfs.btrfs", "-q", image])
        device, fd = loop.attach(image)
        try:
            sc.mount(device, point, "btrfs", sc.MS_NODEV)
        finally:
            os.close(fd)
        yield point
    finally:
        with contextlib.suppress(KernelError):
            mounts.unmount(point)
        with contextlib.suppress(KernelError):
            loop.wait_detached(image)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(image)
        os.rmdir(point)
        os.rmdir(top)
        assert loop.devices_of(image) == []


@pytest.fixture(scope="session")
def storage(node_config: NodeConfig, btrfs_mount: str) -> Iterator[Storage]:
    top = tempfile.mkdtemp(prefix="ctpanel-pools-")
    config = StorageConfig(
        pools=(
            PoolConfig("dev", "dir", os.path.join(top, "dir")),
            PoolConfig("fast", "btrfs", os.path.join(btrfs_mount, "pool")),
            PoolConfig("img", "image", os.path.join(top, "img"), {"default_size": str(64 * MiB)}),
        ),
        default="img",
        backup_dir=os.path.join(top, "backup"),
    )
    store = Storage(node_config, config)
    store.templates.ensure_busybox()
    store.setup()
    try:
        yield store
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="session")
def pool_runtime(node_config: NodeConfig, subreaper: None, storage: Storage) -> Runtime:
    """A runtime over the test pools: each VPS is rooted in its storage volume."""
    return Runtime(node_config, storage=storage)


@pytest.fixture
def make_volume(storage: Storage) -> Iterator[Callable[..., int]]:
    """make_volume(pool, limits, template="busybox") -> CTID of an active volume (no VPS)."""
    made: list[int] = []

    def make(pool: str, limits: Limits | None = None, template: str | None = "busybox") -> int:
        ctid = next_ctid()
        made.append(ctid)
        storage.create(ctid, template, limits or Limits(), pool)
        return ctid

    yield make
    for ctid in made:
        with contextlib.suppress(KernelError):
            storage.destroy(ctid)
    for ctid in made:
        assert storage.leftovers(ctid) == [], f"CT {ctid} left storage behind"


@pytest.fixture
def make_vps(pool_runtime: Runtime, storage: Storage, make_volume: Callable[..., int]) -> Iterator[Callable[..., int]]:
    """make_vps(pool, limits, start=True) -> CTID of a VPS rooted in a fresh volume."""
    made: list[int] = []

    def make(pool: str, limits: Limits | None = None, *, start: bool = True) -> int:
        ctid = make_volume(pool, limits)
        made.append(ctid)
        pool_runtime.create(CreateSpec(ctid=ctid, template="busybox", adopt=True))
        if start:
            pool_runtime.start(ctid)
        return ctid

    yield make
    for ctid in made:
        leftovers.force_remove(pool_runtime, ctid)
        with contextlib.suppress(KernelError):
            storage.destroy(ctid)
    for ctid in made:
        assert leftovers.of(pool_runtime, ctid) == [], f"CT {ctid} left things behind"
