"""VPS root cannot escape its btrfs `diskspace` limit through a subvolume or snapshot of its own.

A nested subvolume gets a level-0 qgroup of its own, outside the VPS's
limit. The VPS's seccomp filter refuses the creating ioctls with EPERM; the
negative control (filter off) shows the escape the filter closes.
"""

from __future__ import annotations

import pytest

from kernel import vpsfiles
from kernel.runtime import Defences, Runtime, StartOptions
from kernel.storage.base import Limits
from kernel.storage.volumes import Storage
from tests.kernel.storage import btrfs_probe

pytestmark = pytest.mark.kernel

MiB = 1 << 20
EPERM = 1
LIMIT = 32 * MiB


def install(storage: Storage, ctid: int) -> None:
    with vpsfiles.VpsRoot(storage.activate(ctid)) as root:
        root.makedirs("/probes")
        for name in btrfs_probe.IOCTLS:
            root.write(f"/probes/{name}", btrfs_probe.program(name, f"nested-{name}"), mode=0o755)


def sh(rt: Runtime, ctid: int, script: str, **kw: object) -> str:
    result = rt.exec(ctid, ["sh", "-c", script], timeout=120, **kw)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def probe(rt: Runtime, ctid: int, **kw: object) -> dict[str, int]:
    """Each ioctl made by VPS root from `/` (the VPS's subvolume root): name -> errno (0: done)."""
    script = "; ".join(f"/probes/{n}; echo {n} $?" for n in btrfs_probe.IOCTLS)
    out = sh(rt, ctid, f"cd / && {{ {script}; }}", **kw)
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines() if line.split()[0] in btrfs_probe.IOCTLS}


def test_vps_root_cannot_create_a_subvolume_or_snapshot(make_vps, pool_runtime: Runtime, storage: Storage) -> None:
    ctid = make_vps("fast", Limits(diskspace=(0, LIMIT)), start=False)
    install(storage, ctid)
    pool_runtime.start(ctid)
    driver = storage.pool("fast")
    before = set(driver.qgroups())
    assert probe(pool_runtime, ctid) == dict.fromkeys(btrfs_probe.IOCTLS, EPERM)
    assert "nested-" not in sh(pool_runtime, ctid, "ls /")
    assert set(driver.qgroups()) == before
    # Every byte still counts: writing past the limit anywhere in the tree fails.
    result = pool_runtime.exec(ctid, ["dd", "if=/dev/zero", "of=/tmp/fill", "bs=1M", "count=64"], timeout=120)
    assert result.returncode != 0 and b"Disk quota exceeded" in result.stderr
    assert storage.usage(ctid).bytes_used <= LIMIT + MiB


def test_negative_control_without_the_filter_the_data_escapes(
    make_vps, pool_runtime: Runtime, storage: Storage, unsafe_testing: None
) -> None:
    ctid = make_vps("fast", Limits(diskspace=(0, LIMIT)), start=False)
    install(storage, ctid)
    pool_runtime.start(ctid, StartOptions(defences=Defences(seccomp=False)))
    results = probe(pool_runtime, ctid, use_seccomp=False)
    assert results["subvol_create"] == 0 and results["snap_create_v2"] == 0, results
    sh(pool_runtime, ctid, "dd if=/dev/zero of=/nested-subvol_create/fill bs=1M count=48", use_seccomp=False)
    assert storage.usage(ctid).bytes_used < LIMIT  # 48 MiB written, not counted: the escape
