"""Swap in the vm tier's guest: a swap file is active and cgroup v2 can limit it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

# Touches 96 MiB, then reports its own cgroup's swap use.
HOG = """
import sys
chunks = [bytearray(b"x" * (1 << 20)) for _ in range(96)]
print(open(sys.argv[1]).read().strip())
"""


def test_swap_file_is_active() -> None:
    swapfile = os.environ["CTPANEL_VM_SWAPFILE"]
    entries = [line.split() for line in Path("/proc/swaps").read_text().splitlines()[1:]]
    assert [e[0] for e in entries] == [swapfile]
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    assert int(meminfo["SwapTotal"].split()[0]) > 0


def test_memory_swap_max_exists_and_lets_a_cgroup_swap(cgroup: Path) -> None:
    assert (Path("/sys/fs/cgroup") / cgroup.name / "memory.swap.max").exists()
    (cgroup / "memory.max").write_text(str(32 << 20))
    (cgroup / "memory.swap.max").write_text("max")
    res = subprocess.run(
        [sys.executable, "-c", HOG, str(cgroup / "memory.swap.current")],
        preexec_fn=lambda: (cgroup / "cgroup.procs").write_text("0\n"),
        capture_output=True, text=True, check=False,
    )
    assert res.returncode == 0, res.stderr  # swapped out instead of being killed
    assert int(res.stdout) > 0
    events = dict(line.split() for line in (cgroup / "memory.events").read_text().splitlines())
    assert int(events["oom_kill"]) == 0
