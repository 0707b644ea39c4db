"""ext4 user and project quotas, enforced, on the guest's stock kernel."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

LIMIT_KIB = 1024
QUOTA_USER = 1000  # gets a 1 MiB hard block limit
FREE_USER = 1001  # has no user limit
PROJECT = 42

# Writes up to 4 MiB in 64 KiB pieces, then prints the bytes written and the errno (0 if none).
WRITER = """
import os, sys
written, err = 0, 0
try:
    with open(sys.argv[1], "wb") as f:
        for _ in range(64):
            written += f.write(b"x" * 65536)
            f.flush()
            os.fsync(f.fileno())
except OSError as e:
    err = e.errno
print(written, err)
"""


def write_as(uid: int, path: Path) -> tuple[int, int]:
    res = subprocess.run([sys.executable, "-c", WRITER, str(path)], user=uid, group=uid,
                         capture_output=True, text=True, check=True)
    written, err = res.stdout.split()
    return int(written), int(err)


@contextlib.contextmanager
def loop_ext4(tmp_path: Path, mkfs_opts: list[str], mount_opts: str) -> Iterator[Path]:
    image = tmp_path / "fs.img"
    # Not under tmp_path: its 0700 parents would stop the unprivileged writers.
    mnt = Path(tempfile.mkdtemp(prefix="quota-", dir="/mnt"))
    mnt.chmod(0o755)
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", *mkfs_opts, str(image)], check=True)
    subprocess.run(["mount", "-o", f"loop,{mount_opts}", str(image), str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
        mnt.rmdir()


@pytest.fixture
def quota_fs(tmp_path: Path) -> Iterator[Path]:
    """ext4 with the quota and project features (hidden quota inodes), limits enforced."""
    with loop_ext4(tmp_path, ["-O", "quota,project", "-E", "quotatype=usrquota:prjquota"],
                   "usrquota,prjquota") as mnt:
        yield mnt


@pytest.fixture
def quota_files_fs(tmp_path: Path) -> Iterator[Path]:
    """ext4 with classic journaled quota files (aquota.user, format vfsv0), turned on."""
    with loop_ext4(tmp_path, [], "usrjquota=aquota.user,jqfmt=vfsv0") as mnt:
        subprocess.run(["quotacheck", "-c", "-u", "-F", "vfsv0", str(mnt)], check=True)
        subprocess.run(["quotaon", "-u", str(mnt)], check=True)
        yield mnt


@pytest.mark.parametrize("fs", ["quota_fs", "quota_files_fs"])
def test_user_hard_limit_gives_edquot(fs: str, request: pytest.FixtureRequest) -> None:
    quota_fs: Path = request.getfixturevalue(fs)
    subprocess.run(["setquota", "-u", str(QUOTA_USER), "0", str(LIMIT_KIB), "0", "0",
                    str(quota_fs)], check=True)
    for uid in (QUOTA_USER, FREE_USER):
        (quota_fs / str(uid)).mkdir()
        os.chown(quota_fs / str(uid), uid, uid)

    written, err = write_as(QUOTA_USER, quota_fs / str(QUOTA_USER) / "big")
    assert err == errno.EDQUOT
    assert written <= LIMIT_KIB * 1024

    written, err = write_as(FREE_USER, quota_fs / str(FREE_USER) / "big")
    assert (written, err) == (4 << 20, 0)

    report = subprocess.run(["repquota", "-u", "-n", str(quota_fs)], capture_output=True,
                            text=True, check=True).stdout
    line = next(ln for ln in report.splitlines() if ln.startswith(f"#{QUOTA_USER} "))
    assert str(LIMIT_KIB) in line.split()
    assert "quota_v2" in Path("/proc/modules").read_text()  # the format the host kernel lacks


def test_project_quota_limits_a_directory_tree(quota_fs: Path) -> None:
    tree = quota_fs / "site"
    (tree / "deep" / "er").mkdir(parents=True)
    outside = quota_fs / "elsewhere"
    outside.mkdir()
    for d in (tree, tree / "deep", tree / "deep" / "er", outside):
        os.chown(d, FREE_USER, FREE_USER)
    # +P: new files and directories inherit the project id.
    subprocess.run(["chattr", "-R", "+P", "-p", str(PROJECT), str(tree)], check=True)
    subprocess.run(["setquota", "-P", str(PROJECT), "0", str(LIMIT_KIB), "0", "0",
                    str(quota_fs)], check=True)

    written, err = write_as(FREE_USER, tree / "deep" / "er" / "big")
    assert err == errno.EDQUOT
    assert written <= LIMIT_KIB * 1024

    written, err = write_as(FREE_USER, outside / "big")
    assert (written, err) == (4 << 20, 0)

    attrs = subprocess.run(["lsattr", "-p", "-d", str(tree / "deep" / "er" / "big")],
                           capture_output=True, text=True, check=True).stdout
    assert attrs.split()[0] == str(PROJECT)
