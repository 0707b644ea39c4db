"""Second-level quota and online grow seen from INSIDE a running VPS on an `image` volume.

tests/vmhost/test_storage_quota.py writes as the on-disk ids from the host; here the
writers are users of a running VPS, so their writes go through the VPS's user
namespace and the idmapped mount of its root: VPS uid 1000 is host uid
id_start+1000, and the mount maps it back to 1000 on disk, the id the limit was
set for. The grow is seen by `df` inside without a restart, and the node's usage
sampler keeps each user's quota file inside up to date.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.runtime import CreateSpec, Runtime, StartOptions
from kernel.storage.base import Limits
from tests.kernel import leftovers
from tests.vmhost.conftest import vm_runtime
from worker import quotas
from worker.usage import Sampler

pytestmark = pytest.mark.vm
CTID = 4244
BOUND = 300.0  # seconds: a bound for a hang, not a timing assertion
MiB = 1 << 20
USERS = "alice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n"
GROUPS = "alice:x:1000:\nbob:x:1001:\n"


@pytest.fixture
def rt(scratch: Path) -> Iterator[Runtime]:
    with vm_runtime(scratch, CTID, image_pool=True) as runtime:
        yield runtime


def sh(rt: Runtime, script: str) -> tuple[int, str]:
    result = rt.exec(CTID, ["sh", "-c", script], timeout=BOUND)
    return result.returncode, (result.stdout + result.stderr).decode()


def as_user(rt: Runtime, user: str, script: str) -> tuple[int, str]:
    """Run `script` as `user` of the VPS (busybox su: root needs no password)."""
    return sh(rt, f"su -s /bin/sh {user} -c '{script}'")


def df_kib(rt: Runtime) -> int:
    """The size of / as `df` inside the VPS shows it, in KiB."""
    code, out = sh(rt, "df -k / | tail -n 1")
    assert code == 0, out
    return int(out.split()[1])


def make_users(rt: Runtime) -> None:
    setup = (f"printf '{USERS}' >> /etc/passwd && printf '{GROUPS}' >> /etc/group && "
             "mkdir -p /home/alice /home/bob && chown alice:alice /home/alice && chown bob:bob /home/bob")
    assert sh(rt, setup) == (0, "")


def test_a_vps_user_hits_their_own_limit_and_a_grow_shows_in_df_inside(rt: Runtime) -> None:
    record = rt.create(CreateSpec(ctid=CTID, template="busybox", hostname="q.example.com",
                                  limits=Limits(diskspace=(0, 96 * MiB), quotaugidlimit=4)))
    assert rt.start(CTID, StartOptions(timeout=BOUND)).running
    make_users(rt)
    assert as_user(rt, "alice", "id -u") == (0, "1000\n")
    # On disk (through the host's view of the volume) the VPS's ids stay 0-65535.
    assert os.stat(os.path.join(rt.storage.activate(CTID), "home/alice")).st_uid == 1000
    assert record.id_start > 65535

    rt.storage.set_ugid_quota(CTID, "user", 1000, (0, 1 * MiB), (0, 0))
    rt.storage.set_ugid_quota(CTID, "user", 1001, (0, 32 * MiB), (0, 0))

    code, out = as_user(rt, "alice", "dd if=/dev/zero of=/home/alice/big bs=64k count=64 conv=fsync")
    assert code != 0 and "quota" in out.lower(), out  # EDQUOT: "Disk quota exceeded"
    assert int(as_user(rt, "alice", "stat -c %s /home/alice/big")[1]) <= 1 * MiB
    assert as_user(rt, "bob", "dd if=/dev/zero of=/home/bob/big bs=64k count=64 conv=fsync 2>/dev/null; "
                              "stat -c %s /home/bob/big") == (0, f"{4 * MiB}\n")
    assert sh(rt, "dd if=/dev/zero of=/root-file bs=64k count=64 conv=fsync 2>/dev/null; stat -c %s /root-file") \
        == (0, f"{4 * MiB}\n")  # VPS root has no second-level limit

    rows = {row["id"]: row for row in rt.storage.ugid_report(CTID, "user")}
    assert rows[1000]["bytes"] <= 1 * MiB and rows[1001]["bytes"] >= 4 * MiB
    rt.storage.publish_quota(CTID)
    code, out = as_user(rt, "alice", "cat /var/lib/ctpanel/quota/user.1000")
    assert code == 0 and f"bhard={1 * MiB}" in out.splitlines(), out
    assert as_user(rt, "alice", "cat /var/lib/ctpanel/quota/user.1001 >/dev/null 2>&1; echo $?") == (0, "1\n")

    # Online grow: the running VPS's df shows the new size, same init, no restart.
    pid = rt.status(CTID).init_pid
    before = df_kib(rt)
    rt.storage.set_limits(CTID, Limits(diskspace=(0, 256 * MiB), quotaugidlimit=4))
    after = df_kib(rt)
    assert after > 2 * before, (before, after)
    assert rt.status(CTID).init_pid == pid
    assert as_user(rt, "bob", "dd if=/dev/zero of=/home/bob/more bs=64k count=16 conv=fsync 2>/dev/null; echo $?") \
        == (0, "0\n")

    assert not rt.stop(CTID, timeout=BOUND).running
    rt.destroy(CTID)
    assert leftovers.of(rt, CTID, record.id_start) == []


def quota_file(rt: Runtime, user: str, uid: int) -> dict[str, str]:
    code, out = as_user(rt, user, f"cat /var/lib/ctpanel/quota/user.{uid}")
    assert code == 0, out
    return dict(line.split("=", 1) for line in out.splitlines() if not line.startswith("#"))


def test_the_usage_sampler_keeps_a_users_quota_file_inside_current(rt: Runtime) -> None:
    rt.create(CreateSpec(ctid=CTID, template="busybox", limits=Limits(diskspace=(0, 96 * MiB), quotaugidlimit=4)))
    assert rt.start(CTID, StartOptions(timeout=BOUND)).running
    make_users(rt)
    rt.storage.set_ugid_quota(CTID, "user", 1000, (0, 16 * MiB), (0, 0))  # publishes the file
    published = quota_file(rt, "alice", 1000)
    assert int(published["bytes"]) < MiB

    assert as_user(rt, "alice", "dd if=/dev/zero of=/home/alice/data bs=64k count=32 conv=fsync 2>/dev/null; echo $?") \
        == (0, "0\n")
    assert quota_file(rt, "alice", 1000) == published  # nothing rewrote it: stale until a refresh

    # A VPS in an operation (its lock held) is skipped at once, not waited for: the sampler runs
    # on the worker's timer with the heartbeat. (Waiting would hang here: lock_wait is an hour.)
    rt.lock_wait = 3600
    with rt.lock(CTID):
        assert quotas.refresh(rt, CTID) == 0
    assert quota_file(rt, "alice", 1000) == published

    # The worker's sampler (its disk refresh; a new sampler measures every VPS at once).
    Sampler(config=None, fast=None, traffic=None)._refresh_disk(rt, [CTID])  # type: ignore[arg-type]
    fresh = quota_file(rt, "alice", 1000)
    assert int(fresh["bytes"]) >= 2 * MiB and fresh["bhard"] == str(16 * MiB)
