"""First-level disk quota, exercised from inside real VPSs on the image and btrfs pools."""

from __future__ import annotations

import os

import pytest

from kernel.errors import Busy, NoSpace, NotSupported
from kernel.runtime import Runtime
from kernel.storage.base import Limits
from kernel.storage.volumes import Storage

pytestmark = pytest.mark.kernel

MiB = 1 << 20


def sh(runtime: Runtime, ctid: int, script: str) -> tuple[int, str]:
    result = runtime.exec(ctid, ["sh", "-c", script], timeout=120)
    return result.returncode, (result.stdout + result.stderr).decode()


def df_inside(runtime: Runtime, ctid: int, flag: str = "-k") -> tuple[int, int]:
    """(total, used) of / as `df` inside the VPS shows it (KiB, or inodes with -i)."""
    code, out = sh(runtime, ctid, f"df {flag} / | tail -n 1")
    assert code == 0, out
    fields = out.split()
    return int(fields[1]), int(fields[2])


@pytest.mark.parametrize(("pool", "error"), [("img", "No space left on device"), ("fast", "Disk quota exceeded")])
def test_writes_past_diskspace_fail_inside_without_hurting_neighbour_or_host(
    pool: str, error: str, make_vps, pool_runtime: Runtime, storage: Storage
) -> None:
    attacker = make_vps(pool, Limits(diskspace=(0, 48 * MiB)))
    neighbour = make_vps(pool, Limits(diskspace=(0, 48 * MiB)))
    code, out = sh(pool_runtime, attacker, "dd if=/dev/zero of=/fill bs=1M count=200 conv=fsync")
    assert code != 0
    assert error in out
    assert os.path.getsize(os.path.join(storage.get(attacker).root, "fill")) <= 48 * MiB
    assert storage.usage(attacker).bytes_used <= 48 * MiB

    code, out = sh(pool_runtime, neighbour, "dd if=/dev/zero of=/data bs=1M count=20 conv=fsync && echo ok")
    assert code == 0 and "ok" in out.split(), out
    host_file = os.path.join(storage.pool(pool).pool.path, "host-probe")
    try:
        with open(host_file, "wb") as fh:
            fh.write(b"x" * (20 * MiB))
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        os.unlink(host_file)


def test_image_df_inside_shows_the_volume(make_vps, pool_runtime: Runtime, storage: Storage) -> None:
    ctid = make_vps("img", Limits(diskspace=(0, 96 * MiB)))
    total, used = df_inside(pool_runtime, ctid)
    usage = storage.usage(ctid)
    assert total * 1024 == usage.bytes_limit
    assert 80 * MiB < total * 1024 <= 96 * MiB  # the journal and ext4's metadata take the rest
    assert abs(used * 1024 - usage.bytes_used) < MiB


def test_inode_exhaustion_stops_at_diskinodes(make_vps, pool_runtime: Runtime, storage: Storage) -> None:
    ctid = make_vps("img", Limits(diskspace=(0, 64 * MiB), diskinodes=(0, 2000)))
    inodes, used = df_inside(pool_runtime, ctid, "-i")
    assert 2000 <= inodes < 2100  # mke2fs rounds up to whole inode-table blocks
    code, out = sh(
        pool_runtime, ctid, "mkdir /many; i=0; while touch /many/f$i 2>/tmp/err; do i=$((i+1)); done; "
        "echo $i; cat /tmp/err"
    )
    made = int(out.split()[0])
    assert "No space left on device" in out
    assert made == inodes - used - 2  # every free inode but those of /many and /tmp/err
    assert storage.usage(ctid).inodes_used == inodes
    code, out = sh(pool_runtime, ctid, "rm -r /many && echo freed > /tmp/after && cat /tmp/after")
    assert (code, out.strip()) == (0, "freed")


def test_grow_raises_size_and_inodes_seen_inside(make_vps, pool_runtime: Runtime, storage: Storage) -> None:
    """Offline here (this host's root lacks CAP_SYS_RESOURCE); online in the vm tier."""
    ctid = make_vps("img", Limits(diskspace=(0, 64 * MiB), diskinodes=(0, 4096)))
    before, _ = df_inside(pool_runtime, ctid)
    inodes_before, _ = df_inside(pool_runtime, ctid, "-i")
    pool_runtime.stop(ctid)
    storage.deactivate(ctid)
    storage.set_limits(ctid, Limits(diskspace=(0, 256 * MiB), diskinodes=(0, 4096)))
    pool_runtime.start(ctid)
    after, _ = df_inside(pool_runtime, ctid)
    inodes_after, _ = df_inside(pool_runtime, ctid, "-i")
    assert after > 3 * before
    assert inodes_after > inodes_before  # ext4 adds inodes with each new block group (128 MiB here)
    code, out = sh(pool_runtime, ctid, "dd if=/dev/zero of=/big bs=1M count=120 conv=fsync && echo ok")
    assert code == 0, out
    assert storage.get(ctid).limits.space == 256 * MiB


def test_btrfs_limit_changes_online(make_vps, pool_runtime: Runtime, storage: Storage) -> None:
    ctid = make_vps("fast", Limits(diskspace=(0, 32 * MiB)))
    code, out = sh(pool_runtime, ctid, "dd if=/dev/zero of=/a bs=1M count=60 conv=fsync")
    assert code != 0 and "Disk quota exceeded" in out
    storage.set_limits(ctid, Limits(diskspace=(0, 128 * MiB)))
    code, out = sh(pool_runtime, ctid, "rm /a; dd if=/dev/zero of=/b bs=1M count=60 conv=fsync && echo ok")
    assert code == 0, out
    assert storage.usage(ctid).bytes_limit == 128 * MiB


def test_image_shrink_offline_refuses_when_data_does_not_fit(make_volume, storage: Storage) -> None:
    ctid = make_volume("img", Limits(diskspace=(0, 160 * MiB)))
    root = storage.get(ctid).root
    with open(os.path.join(root, "data"), "wb") as fh:
        fh.write(os.urandom(MiB) * 70)
    with pytest.raises(Busy, match="stopped"):
        storage.set_limits(ctid, Limits(diskspace=(0, 100 * MiB)))
    storage.deactivate(ctid)
    with pytest.raises(NoSpace, match="does not fit"):
        storage.set_limits(ctid, Limits(diskspace=(0, 48 * MiB)))
    storage.set_limits(ctid, Limits(diskspace=(0, 100 * MiB)))
    assert os.path.getsize(storage.pool("img").image(ctid)) == 100 * MiB
    root = storage.activate(ctid)
    assert os.path.getsize(os.path.join(root, "data")) == 70 * MiB
    assert storage.usage(ctid).bytes_limit <= 100 * MiB


def test_image_inode_count_cannot_change_alone(make_volume, storage: Storage) -> None:
    ctid = make_volume("img", Limits(diskspace=(0, 64 * MiB), diskinodes=(0, 2000)))
    with pytest.raises(NotSupported, match="inode"):
        storage.set_limits(ctid, Limits(diskspace=(0, 64 * MiB), diskinodes=(0, 9000)))
    assert storage.get(ctid).limits.inodes == 2000


def test_dir_records_limits_without_enforcing(make_volume, storage: Storage) -> None:
    ctid = make_volume("dev", Limits(diskspace=(0, 64 * MiB)))
    assert not storage.pool("dev").capabilities.diskspace
    assert storage.usage(ctid).bytes_limit == 0
    assert storage.get(ctid).limits.space == 64 * MiB
