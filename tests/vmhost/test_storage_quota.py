"""The image driver's second-level quota and online grow, on the guest's stock kernel.

This host's kernel lacks ext4's quota format and its root lacks CAP_SYS_RESOURCE
(online resize), so both run here. Writers are unprivileged children with the ids
a VPS user has on disk (its own 0-65535 ids: the volume is mounted idmapped into
the VPS, so these are the ids quota is charged to).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.config import NodeConfig
from kernel.errors import LimitReached
from kernel.storage import loop, mounts
from kernel.storage.base import Limits, PoolConfig
from kernel.storage.volumes import QUOTA_DIR, Storage, StorageConfig

pytestmark = pytest.mark.vm

MiB = 1 << 20
CTID = 4242


@pytest.fixture
def storage(scratch: Path) -> Iterator[Storage]:
    top = Path(tempfile.mkdtemp(prefix="storage-", dir=scratch))
    node = NodeConfig(node="vm", state_root=str(top / "state"), idmap_registry=str(top / "ids.json"))
    config = StorageConfig((PoolConfig("img", "image", str(top / "img")),), "img", str(top / "backup"))
    store = Storage(node, config)
    store.setup()
    try:
        yield store
    finally:
        store.destroy(CTID)
        assert store.leftovers(CTID) == []


def write_as(uid: int, dirfd: int, name: str, size: int = 4 * MiB) -> tuple[int, int]:
    """Write `size` bytes as `uid`:`uid` in a forked child; (bytes written, errno or 0)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        written, err = 0, 0
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dirfd)
            chunk = b"x" * 65536
            while written < size:
                written += os.write(fd, chunk)
                os.fsync(fd)
        except OSError as exc:
            err = exc.errno or -1
        finally:
            os.write(write, f"{written} {err}".encode())
            os._exit(0)
    os.close(write)
    try:
        out = os.read(read, 100).decode().split()
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    return int(out[0]), int(out[1])


def test_each_user_hits_only_their_own_second_level_limit(storage: Storage) -> None:
    root = storage.create(CTID, None, Limits(diskspace=(0, 128 * MiB), quotaugidlimit=2), "img")
    for uid in (1000, 1001):
        os.mkdir(os.path.join(root, f"home{uid}"), 0o755)
        os.chown(os.path.join(root, f"home{uid}"), uid, uid)
    storage.set_ugid_quota(CTID, "user", 1000, (0, 1 * MiB), (0, 0))
    storage.set_ugid_quota(CTID, "user", 1001, (0, 64 * MiB), (0, 0))
    with pytest.raises(LimitReached, match="quotaugidlimit"):
        storage.set_ugid_quota(CTID, "user", 1002, (0, MiB), (0, 0))

    dirfd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        written, err = write_as(1000, dirfd, "home1000/big")
        assert err == errno.EDQUOT
        assert written <= 1 * MiB
        assert write_as(1001, dirfd, "home1001/big") == (4 * MiB, 0)
    finally:
        os.close(dirfd)

    rows = {row["id"]: row for row in storage.ugid_report(CTID, "user")}
    assert rows[1000]["bhard"] == 1 * MiB and rows[1000]["bytes"] <= 1 * MiB
    assert rows[1001]["bytes"] >= 4 * MiB
    assert storage.publish_quota(CTID) >= 2
    mine = Path(root) / QUOTA_DIR.lstrip("/") / "user.1000"
    st = mine.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (1000, 0o400)  # readable by that user only
    assert f"bhard={1 * MiB}" in mine.read_text().splitlines()


def test_online_grow_is_seen_by_a_process_holding_the_filesystem(storage: Storage) -> None:
    root = storage.create(CTID, None, Limits(diskspace=(0, 64 * MiB), diskinodes=(0, 4096)), "img")
    mount = mounts.find(root)
    holder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)  # as a running VPS's cwd would
    try:
        before = os.fstatvfs(holder)
        storage.set_limits(CTID, Limits(diskspace=(0, 256 * MiB), diskinodes=(0, 4096)))
        after = os.fstatvfs(holder)
        assert after.f_blocks * after.f_frsize > 3 * before.f_blocks * before.f_frsize
        assert after.f_files > before.f_files
        assert mounts.find(root) == mount  # the same mount: nothing was remounted
        assert len(loop.devices_of(storage.pool("img").image(CTID))) == 1
    finally:
        os.close(holder)
