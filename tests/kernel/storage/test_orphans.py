"""Reconcile sees and removes orphaned volumes in this node's pools, never in another node's."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from kernel.config import NodeConfig
from kernel.runtime import Runtime
from kernel.storage.base import Limits, PoolConfig
from kernel.storage.volumes import Storage, StorageConfig
from worker import reconcile

pytestmark = pytest.mark.kernel

MiB = 1 << 20


def node(top: str, name: str) -> NodeConfig:
    return NodeConfig(node=f"{name}{os.getpid()}", state_root=os.path.join(top, name, "state"),
                      cgroup_prefix=f"ctpanel-orphans-{name}-{os.getpid()}",
                      idmap_registry=os.path.join(top, name, "ids.json"))


@pytest.fixture
def two_nodes(btrfs_mount: str) -> Iterator[tuple[Runtime, Storage, str]]:
    """Node A (dir and btrfs pools, plus B's btrfs pool wrongly configured as its `shared`), node B."""
    top = tempfile.mkdtemp(prefix="ctpanel-orphans-")
    pool_a, pool_b = (os.path.join(btrfs_mount, f"orphans-{name}") for name in ("a", "b"))
    storage_b = Storage(node(top, "b"), StorageConfig((PoolConfig("fast", "btrfs", pool_b),), "fast",
                                                      os.path.join(top, "b", "backup")))
    storage_b.setup()  # B claims its pool first
    config_a = StorageConfig((PoolConfig("dev", "dir", os.path.join(top, "a", "dir")),
                              PoolConfig("fast", "btrfs", pool_a),
                              PoolConfig("shared", "btrfs", pool_b)), "dev", os.path.join(top, "a", "backup"))
    storage_a = Storage(node(top, "a"), config_a, templates=storage_b.templates)
    storage_a.templates.ensure_busybox()
    storage_a.setup()
    rt_a = Runtime(storage_a.config, storage=storage_a)
    try:
        yield rt_a, storage_b, top
    finally:
        for store in (storage_a, storage_b):  # the pools' template subvolumes go with the session's btrfs
            for ctid in store.volumes():
                store.destroy_orphan(ctid)
        shutil.rmtree(top, ignore_errors=True)


def test_orphaned_pool_volumes_are_listed_and_removed_for_this_node_only(two_nodes) -> None:
    rt_a, storage_b, _ = two_nodes
    storage_a = rt_a.storage
    lost, crashed, theirs = 7101, 7102, 7103
    storage_a.create(lost, "busybox", Limits(diskspace=(0, 64 * MiB)), "fast")
    storage_a.create(crashed, None, Limits(), "dev")
    os.unlink(os.path.join(storage_a.config.path("storage"), f"{lost}.json"))  # the record is gone too
    storage_b.create(theirs, "busybox", Limits(), "fast")
    fast = storage_a.pool("fast")
    subvol = fast.subvolume_id(fast.root(lost))

    assert storage_a.volumes() == {lost, crashed}  # B's volume, seen through `shared`, is not ours
    assert reconcile.orphans(rt_a)["volumes"] == [lost, crashed]
    assert reconcile.clean_orphans(rt_a) == [lost, crashed]
    assert storage_a.volumes() == set() and reconcile.orphans(rt_a)["volumes"] == []
    assert storage_a.leftovers(lost) == [] and storage_a.leftovers(crashed) == []
    assert subvol not in fast.qgroups()
    assert storage_b.find(theirs) is not None and storage_b.pool("fast").exists(theirs)
    assert storage_b.volumes() == {theirs}
