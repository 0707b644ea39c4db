"""The favordynmods plan for the host's cgroup2 mount (kernel/cgroups/tuning.py): pure logic over mountinfo.
The reconfigure itself runs in the vm tier (tests/vmhost/test_cgroup_tuning.py): on this host's kernel the
faster migration mode it switches on cannot be switched off again until reboot."""

from __future__ import annotations

from kernel.cgroups import tuning

PURE = """\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
25 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""
HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


def test_pure_v2_keeps_its_flags_and_adds_favordynmods() -> None:
    assert tuning.plan(PURE) == ("/sys/fs/cgroup", ["nsdelegate", "memory_recursiveprot", "favordynmods"])


def test_hybrid_host_sets_it_on_the_cgroup2_beside_v1() -> None:
    assert tuning.plan(HYBRID) == ("/sys/fs/cgroup/unified", ["favordynmods"])


def test_nothing_to_do_when_set_or_without_cgroup2() -> None:
    assert tuning.plan(PURE.replace("memory_recursiveprot", "memory_recursiveprot,favordynmods")) is None
    assert tuning.plan(HYBRID.replace("cgroup2 cgroup2 rw\n", "cgroup2 cgroup2 rw,favordynmods\n")) is None
    assert tuning.plan(HYBRID.splitlines()[1] + "\n") is None  # pure v1: no cgroup2 to carry it


def test_superblock_flags_read_the_last_mount_at_a_point() -> None:
    stacked = HYBRID + "50 41 0:40 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n"
    assert tuning.superblock_flags(stacked, "/sys/fs/cgroup/unified") == ["nsdelegate"]
    assert tuning.superblock_flags(HYBRID, "/nowhere") is None
