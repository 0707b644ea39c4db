"""Storage benchmark: create/destroy per driver, backup and restore throughput. Prints a table.

    .venv/bin/python -m bench.storage [--runs N] [--size-mib M]

Run as root. Baselines for what `lxc-copy` does (LXC is not installed here): a
full copy of the unpacked busybox rootfs (`cp -a`, as `lxc-copy` without -s)
and an overlay snapshot (upper/work dirs plus an overlay mount, as
`lxc-copy -s -B overlay`). Everything lives under a temporary directory with
its own loop-file btrfs, removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator

from kernel import archive
from kernel import syscalls as sc
from kernel.config import NodeConfig
from kernel.run import run
from kernel.storage import btrfsio, loop, mounts
from kernel.storage.backup import Backups
from kernel.storage.base import Limits, PoolConfig, no_quiesce
from kernel.storage.volumes import Storage, StorageConfig

MiB = 1 << 20


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@contextlib.contextmanager
def btrfs_loop(top: str, size: int = 8 << 30) -> Iterator[str]:
    """A btrfs on a sparse loop file under `top`, mounted at `<top>/btrfs` (its mount point yielded)."""
    image, mount_point = os.path.join(top, "btrfs.img"), os.path.join(top, "btrfs")
    os.mkdir(mount_point)
    with open(image, "wb") as fh:
        fh.truncate(size)
    run(["mkfs.btrfs", "-q", image])
    device, fd = loop.attach(image)
    sc.mount(device, mount_point, "btrfs", sc.MS_NODEV)
    os.close(fd)
    try:
        yield mount_point
    finally:
        with contextlib.suppress(Exception):
            mounts.unmount(mount_point)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=1024, help="data in the backup/restore volume")
    args = parser.parse_args()
    top = tempfile.mkdtemp(prefix="ctpanel-bench-storage-")
    rows: list[tuple[str, float]] = []
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, top, ignore_errors=True)
        btrfs_mnt = cleanup.enter_context(btrfs_loop(top))
        node = NodeConfig(node="bench", state_root=os.path.join(top, "state"),
                          idmap_registry=os.path.join(top, "ids.json"))  # fmt: skip
        config = StorageConfig(
            pools=(
                PoolConfig("dir", "dir", os.path.join(top, "dir")),
                PoolConfig("btrfs", "btrfs", os.path.join(btrfs_mnt, "pool")),
                PoolConfig("image", "image", os.path.join(top, "image")),
            ),
            default="dir",
            backup_dir=os.path.join(top, "backup"),
        )
        storage = Storage(node, config)
        storage.templates.ensure_busybox()
        storage.setup()
        tarball = storage.templates.get("busybox").tarball
        rootfs = os.path.join(top, "rootfs")
        os.mkdir(rootfs)
        archive.unpack(tarball, rootfs)
        limits = Limits(diskspace=(0, 1 << 30))
        ctid = iter(range(1000, 100000))

        for pool in ("dir", "btrfs", "image"):
            warm = next(ctid)
            storage.create(warm, "busybox", limits, pool)  # prepares the native template
            storage.destroy(warm)
            # All creates, then all destroys: a destroy leaves btrfs's cleaner dropping the
            # subvolume in the background, which would slow the next create's commit.
            made = [next(ctid) for _ in range(args.runs)]
            creates = [timed(lambda n=n, pool=pool: storage.create(n, "busybox", limits, pool)) for n in made]
            destroys = [timed(lambda n=n: storage.destroy(n)) for n in made]
            rows.append((f"create {pool}", statistics.median(creates)))
            rows.append((f"destroy {pool}", statistics.median(destroys)))

        full, snap = [], []
        for i in range(args.runs):
            dest = os.path.join(top, f"copy{i}")
            full.append(timed(lambda dest=dest: run(["cp", "-a", rootfs, dest])))
            upper, work, merged = (os.path.join(top, f"ov{i}", d) for d in ("upper", "work", "merged"))

            def overlay(upper: str = upper, work: str = work, merged: str = merged) -> None:
                for d in (upper, work, merged):
                    os.makedirs(d)
                sc.mount("overlay", merged, "overlay", 0, f"lowerdir={rootfs},upperdir={upper},workdir={work}")

            snap.append(timed(overlay))
            mounts.unmount(merged)
        rows.append(("baseline: full copy (lxc-copy)", statistics.median(full)))
        rows.append(("baseline: overlay snapshot (lxc-copy -s -B overlay)", statistics.median(snap)))
        # The floor of `create btrfs`: the snapshot ioctl alone, which commits a transaction.
        templates = os.path.join(btrfs_mnt, "pool", "templates")
        template = os.path.join(templates, os.listdir(templates)[0])
        bare = []
        for i in range(args.runs):
            dest = os.path.join(btrfs_mnt, f"bare{i}")
            bare.append(timed(lambda dest=dest: btrfsio.snapshot(template, dest)))
        rows.append(("kernel floor: btrfs snapshot ioctl alone", statistics.median(bare)))

        size = args.size_mib * MiB
        backups = Backups(storage)
        for pool in ("image", "btrfs"):
            n = next(ctid)
            root = storage.create(n, "busybox", Limits(diskspace=(0, size + 512 * MiB)), pool)
            block = os.urandom(MiB // 2) + bytes(MiB // 2)  # half random, half zeros
            with open(os.path.join(root, "data"), "wb") as fh:
                for _ in range(args.size_mib):
                    fh.write(block)
            os.sync()
            info = None

            def do_backup(n: int = n) -> None:
                nonlocal info
                info = backups.backup(n, quiesce=no_quiesce)

            seconds = timed(do_backup)
            rows.append((f"backup {pool} {args.size_mib} MiB (MiB/s)", args.size_mib / seconds))
            target = next(ctid)
            assert info is not None
            seconds = timed(lambda info=info, target=target: backups.restore(info.path, target))
            rows.append((f"restore {pool} {args.size_mib} MiB (MiB/s)", args.size_mib / seconds))
            storage.destroy(target)
            storage.destroy(n)
    width = max(len(name) for name, _ in rows)
    print(f"{'operation':<{width}}  value")
    for name, value in rows:
        unit = "" if "MiB/s" in name else " ms"
        shown = f"{value:.0f}" if "MiB/s" in name else f"{value * 1000:.1f}"
        print(f"{name:<{width}}  {shown}{unit}")


if __name__ == "__main__":
    main()
