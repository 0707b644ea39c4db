"""The node makes a volume's second-level quotas what a VpsRequest's `ugid_quotas` says (worker/quotas.py),
on the guest's stock kernel (this host's kernel has no ext4 quota format)."""

from __future__ import annotations

import errno
import os

import pytest

from kernel.storage.base import Limits
from kernel.storage.volumes import Storage
from tests.vmhost.test_storage_quota import CTID, MiB, storage, write_as  # noqa: F401 (storage: the fixture)
from worker import protocol, quotas

pytestmark = pytest.mark.vm


def request(limit: int, *entries: tuple[str, int, int]) -> protocol.VpsRequest:
    return protocol.VpsRequest(task=protocol.TASK_VPS_SET, ctid=CTID, node="vm", operation_id="op",
                               limits={"quotaugidlimit": limit}, ugid_quotas=[
                                   {"kind": kind, "id": ident, "space_soft": 0, "space_hard": hard,
                                    "inodes_soft": 0, "inodes_hard": 0} for kind, ident, hard in entries])


def limited(storage: Storage, kind: str = "user") -> dict[int, int]:  # noqa: F811 (the fixture's name)
    return {row["id"]: row["bhard"] for row in storage.ugid_report(CTID, kind) if row["bhard"]}


def test_the_volume_gets_the_requests_whole_list_and_nothing_else(storage: Storage) -> None:  # noqa: F811
    root = storage.create(CTID, None, Limits(diskspace=(0, 128 * MiB), quotaugidlimit=2), "img")
    for uid in (1000, 1002):
        os.mkdir(os.path.join(root, f"home{uid}"), 0o755)
        os.chown(os.path.join(root, f"home{uid}"), uid, uid)

    assert quotas.converge(storage, request(2, ("user", 1000, MiB), ("user", 1001, 64 * MiB))) == 2
    assert limited(storage) == {1000: MiB, 1001: 64 * MiB}
    assert quotas.converge(storage, request(2, ("user", 1000, MiB), ("user", 1001, 64 * MiB))) == 0  # again: same
    dirfd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        assert write_as(1000, dirfd, "home1000/big")[1] == errno.EDQUOT
        # 1000's limit moves to 1002 within quotaugidlimit 2: cleared first, then set.
        assert quotas.converge(storage, request(2, ("user", 1001, 64 * MiB), ("user", 1002, MiB))) == 2
        assert limited(storage) == {1001: 64 * MiB, 1002: MiB}
        assert write_as(1000, dirfd, "home1000/more") == (4 * MiB, 0)
        assert write_as(1002, dirfd, "home1002/big")[1] == errno.EDQUOT
    finally:
        os.close(dirfd)
    assert quotas.converge(storage, request(2, ("group", 50, 2 * MiB))) == 3  # users cleared, the group set
    assert limited(storage) == {} and limited(storage, "group") == {50: 2 * MiB}
    assert quotas.converge(storage, request(0)) == 0  # second level off: the node leaves the volume alone
