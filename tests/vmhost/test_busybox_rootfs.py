"""The vm tier's busybox rootfs is usable as a container root inside the guest."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm


def test_rootfs_runs_as_pid_1_of_a_new_pid_namespace(busybox_rootfs: Path) -> None:
    res = subprocess.run(
        ["unshare", "--fork", "--pid", "chroot", str(busybox_rootfs),
         "/bin/sh", "-c", "echo $$; . /etc/os-release; echo $ID"],
        capture_output=True, text=True, check=True,
    )
    assert res.stdout.split() == ["1", "busybox"]


def test_tarball_unpacks_to_a_working_root(tmp_path: Path) -> None:
    subprocess.run(["tar", "-xzf", os.environ["CTPANEL_VM_BUSYBOX_TARBALL"], "-C", str(tmp_path)],
                   check=True)
    res = subprocess.run(["chroot", str(tmp_path), "/usr/bin/env", "sh", "-c", "id -u"],
                         capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "0"
