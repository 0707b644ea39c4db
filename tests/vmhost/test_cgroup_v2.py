"""cgroup v2 in the vm tier's guest: the only hierarchy, with the controllers we need."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

CGROUP_ROOT = Path("/sys/fs/cgroup")
NEEDED = {"cpuset", "cpu", "io", "memory", "pids"}

# Allocates and touches 256 MiB, 1 MiB at a time.
HOG = "chunks = []\nfor _ in range(256):\n    chunks.append(bytearray(1 << 20))\nprint('survived')\n"


def mounts() -> list[list[str]]:
    return [line.split() for line in Path("/proc/mounts").read_text().splitlines()]


def test_cgroup2_is_the_only_hierarchy() -> None:
    cgroup_mounts = [(m[1], m[2]) for m in mounts() if m[2].startswith("cgroup")]
    assert cgroup_mounts == [("/sys/fs/cgroup", "cgroup2")]
    # One line "0::/..." means no v1 hierarchy holds this process.
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("0::")


def test_controllers_present_and_delegated() -> None:
    offered = set((CGROUP_ROOT / "cgroup.controllers").read_text().split())
    assert offered >= NEEDED
    enabled = set((CGROUP_ROOT / "cgroup.subtree_control").read_text().split())
    assert enabled >= NEEDED


def test_child_cgroup_has_the_limit_files(cgroup: Path) -> None:
    for name in ("memory.max", "memory.high", "memory.swap.max", "memory.events",
                 "pids.max", "cpu.max", "cpu.weight", "io.max", "cpuset.cpus"):
        assert (cgroup / name).exists(), name


def test_memory_max_oom_kills_inside_the_cgroup_only(cgroup: Path) -> None:
    (cgroup / "memory.max").write_text(str(64 << 20))
    (cgroup / "memory.swap.max").write_text("0")
    bystander = subprocess.Popen(["sleep", "600"])
    try:
        hog = subprocess.run(
            [sys.executable, "-c", HOG],
            preexec_fn=lambda: (cgroup / "cgroup.procs").write_text("0\n"),
            capture_output=True, text=True, check=False,
        )
        events = dict(line.split() for line in (cgroup / "memory.events").read_text().splitlines())
        assert hog.returncode == -9, (hog.returncode, hog.stdout, hog.stderr)
        assert "survived" not in hog.stdout
        assert int(events["oom_kill"]) >= 1
        assert int(events["max"]) >= 1
        assert bystander.poll() is None  # outside the cgroup: untouched
    finally:
        bystander.kill()
        bystander.wait()


def test_pids_max_refuses_forks(cgroup: Path) -> None:
    (cgroup / "pids.max").write_text("4")
    script = (
        "import os\n"
        "n = 0\n"
        "try:\n"
        "    for _ in range(20):\n"
        "        if os.fork() == 0:\n"
        "            os.close(1); os.close(2)\n"
        "            import time; time.sleep(600); os._exit(0)\n"
        "        n += 1\n"
        "except BlockingIOError:\n"
        "    print('refused', n)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", script],
        preexec_fn=lambda: (cgroup / "cgroup.procs").write_text("0\n"),
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert res.stdout.split() == ["refused", "3"], (res.stdout, res.stderr)
    events = dict(line.split() for line in (cgroup / "pids.events").read_text().splitlines())
    assert int(events["max"]) >= 1
