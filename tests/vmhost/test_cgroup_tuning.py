"""`python -m worker.setup cgroups` on a pure cgroup v2 host: favordynmods set, the other flags kept
(the guest mounts cgroup2 with nsdelegate,memory_recursiveprot), and a second run has nothing to do."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kernel.cgroups import tuning

pytestmark = pytest.mark.vm


def cgroup2_flags() -> list[str] | None:
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        return tuning.superblock_flags(fh.read(), "/sys/fs/cgroup")


def setup_cgroups() -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker.setup", "cgroups"], capture_output=True, text=True,
                          check=True, timeout=60)


def test_setup_sets_favordynmods_and_keeps_the_other_flags() -> None:
    before = cgroup2_flags()
    assert before is not None and tuning.OPTION not in before and "nsdelegate" in before
    assert "favordynmods set on /sys/fs/cgroup" in setup_cgroups().stderr
    assert sorted(cgroup2_flags() or []) == sorted([*before, tuning.OPTION])  # the kernel's own order
    assert setup_cgroups().stderr == ""
