"""Volume lifecycle per driver: btrfs clones share extents, destroy leaves nothing, snapshots roll back."""

from __future__ import annotations

import os

import pytest

from kernel.errors import AlreadyExists, NotFound
from kernel.run import run
from kernel.storage import loop, mounts
from kernel.storage.base import Limits
from kernel.storage.volumes import Storage

pytestmark = pytest.mark.kernel

MiB = 1 << 20


def test_btrfs_create_is_a_snapshot_sharing_the_templates_extents(make_volume, storage: Storage) -> None:
    driver = storage.pool("fast")
    ctid = make_volume("fast", Limits(diskspace=(0, 64 * MiB)))
    root = storage.get(ctid).root
    template = driver.template_path("busybox", storage.templates.get("busybox").meta.checksum)
    assert _show(root)["Parent UUID"] == _show(template)["UUID"]
    run(["btrfs", "filesystem", "sync", root])
    rfer, excl, limit = driver.qgroup(ctid)
    busybox = os.path.getsize(os.path.join(root, "bin", "busybox"))
    assert rfer > busybox  # the VPS references every byte of its files...
    assert excl < busybox // 4  # ...but owns almost none of them: the extents are the template's
    assert limit == 64 * MiB
    du = run(["btrfs", "filesystem", "du", "-s", "--raw", root]).stdout.splitlines()[-1].split()
    assert int(du[2]) >= busybox  # "Set shared"


@pytest.mark.parametrize("pool", ["fast", "img", "dev"])
def test_destroy_leaves_no_loop_device_mount_subvolume_or_qgroup(pool: str, make_vps, pool_runtime, storage) -> None:
    ctid = make_vps(pool, Limits(diskspace=(0, 48 * MiB)) if pool != "dev" else Limits())
    driver = storage.pool(pool)
    root = storage.get(ctid).root
    subvol = driver.subvolume_id(root) if pool == "fast" else None
    if pool != "dev":
        storage.snapshot_create(ctid, "before")
    if pool == "img":
        assert loop.devices_of(driver.image(ctid))
        assert mounts.find(root) is not None
    pool_runtime.stop(ctid, fast=True)
    pool_runtime.destroy(ctid)
    storage.destroy(ctid)
    assert storage.leftovers(ctid) == []
    assert storage.find(ctid) is None
    assert not os.path.exists(root)
    assert mounts.find(root) is None
    if pool == "img":
        assert loop.devices_of(driver.image(ctid)) == []
    if pool == "fast":
        assert subvol not in driver.qgroups()
        listing = run(["btrfs", "subvolume", "list", driver.pool.path]).stdout
        assert f"private/{ctid}" not in listing and f"snapshots/{ctid}" not in listing
    storage.destroy(ctid)  # idempotent


def test_btrfs_destroy_removes_subvolumes_the_vps_made(make_vps, pool_runtime, storage: Storage) -> None:
    ctid = make_vps("fast", Limits(diskspace=(0, 48 * MiB)))
    root = storage.get(ctid).root
    run(["btrfs", "subvolume", "create", os.path.join(root, "nested")])  # as VPS root could, via ioctl
    run(["btrfs", "subvolume", "create", os.path.join(root, "nested", "deeper")])
    driver = storage.pool("fast")
    ids = [driver.subvolume_id(os.path.join(root, p)) for p in ("nested", "nested/deeper")]
    pool_runtime.stop(ctid, fast=True)
    storage.destroy(ctid)
    assert storage.leftovers(ctid) == []
    assert not set(ids) & set(driver.qgroups())


@pytest.mark.parametrize("pool", ["fast", "img"])
def test_snapshot_and_rollback(pool: str, make_volume, storage: Storage) -> None:
    ctid = make_volume(pool, Limits(diskspace=(0, 64 * MiB)))
    root = storage.get(ctid).root
    with open(os.path.join(root, "etc", "motd"), "w") as fh:
        fh.write("before\n")
    snap = storage.snapshot_create(ctid, "s1")
    with pytest.raises(AlreadyExists):
        storage.snapshot_create(ctid, "s1")
    with open(os.path.join(root, "etc", "motd"), "w") as fh:
        fh.write("after\n")
    os.unlink(os.path.join(root, "bin", "busybox"))
    assert [s.name for s in storage.snapshot_list(ctid)] == ["s1"]
    assert storage.snapshot_list(ctid)[0].created == snap.created
    storage.snapshot_rollback(ctid, "s1")
    root = storage.activate(ctid)
    with open(os.path.join(root, "etc", "motd")) as fh:
        assert fh.read() == "before\n"
    assert os.path.exists(os.path.join(root, "bin", "busybox"))
    assert storage.get(ctid).limits.space == 64 * MiB
    if pool == "fast":
        assert storage.usage(ctid).bytes_limit == 64 * MiB
    storage.snapshot_delete(ctid, "s1")
    assert storage.snapshot_list(ctid) == []
    with pytest.raises(NotFound):
        storage.snapshot_rollback(ctid, "s1")


def test_create_refuses_an_existing_volume_and_unknown_pool(make_volume, storage: Storage) -> None:
    ctid = make_volume("img")
    with pytest.raises(AlreadyExists):
        storage.create(ctid, "busybox", Limits(), "img")
    with pytest.raises(NotFound):
        storage.create(ctid + 1, "busybox", Limits(), "nosuchpool")
    assert storage.find(ctid + 1) is None


def _show(path: str) -> dict[str, str]:
    out = {}
    for line in run(["btrfs", "subvolume", "show", path]).stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out
