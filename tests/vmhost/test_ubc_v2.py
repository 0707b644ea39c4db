"""Beancounters on cgroup v2 in the vm tier's guest (behaviour only): the same `Limits` as on
the v1 host, applied by kernel/ubc to a VPS cgroup made by the v2 driver, read back by the fast
tier; swap limited with the guest's swap file present."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from kernel.cgroups import V2Driver
from kernel.errors import KernelError
from kernel.ubc import FastReader, Limits, apply

pytestmark = pytest.mark.vm
MB = 1 << 20
CTID = 101
# Touches N MiB, then reports its cgroup's swap use.
HOG = """
import sys
chunks = [bytearray(b"x" * (1 << 20)) for _ in range(int(sys.argv[1]))]
print(open(sys.argv[2]).read().strip())
"""

# Forks sleepers (their output closed, so the run returns at once) until the kernel refuses.
FORKS = """
import os, time
for _ in range(20):
    try:
        if os.fork() == 0:
            os.closerange(0, 3)
            time.sleep(60)
            os._exit(0)
    except BlockingIOError:
        print("refused")
        break
"""


@pytest.fixture
def driver() -> Iterator[V2Driver]:
    drv = V2Driver(f"ubc-{uuid.uuid4().hex[:8]}")
    drv.ensure(CTID)
    try:
        yield drv
    finally:
        with contextlib.suppress(KernelError):
            drv.kill(CTID, timeout=60)
        drv.remove(CTID)
        os.rmdir(os.path.join(drv.mount, drv.prefix))


def _run_inside(driver: V2Driver, argv: list[str]) -> subprocess.CompletedProcess[str]:
    procs = os.path.join(driver.paths(CTID).inner["unified"], "cgroup.procs")

    def join() -> None:
        with open(procs, "w", encoding="ascii") as fh:
            fh.write("0\n")

    return subprocess.run(argv, preexec_fn=join, capture_output=True, text=True, check=False, timeout=600)


def test_ram_and_swap_limits(driver: V2Driver) -> None:
    apply(driver, CTID, Limits(ram=32 * MB, swap=32 * MB))
    swap_current = os.path.join(driver.controller_dir(CTID, "memory"), "memory.swap.current")
    fits = _run_inside(driver, [sys.executable, "-c", HOG, "40", swap_current])
    # 40 MiB + the interpreter (~10 MiB) > ram, well within ram + swap: part of it goes to swap.
    assert fits.returncode == 0, fits.stderr
    assert 0 < int(fits.stdout) <= 32 * MB
    hog = _run_inside(driver, [sys.executable, "-c", HOG, "128", swap_current])
    assert hog.returncode == -9  # ram + swap exhausted: OOM-killed inside the cgroup
    sample = FastReader(driver).read_all([CTID])[CTID]
    assert sample.rows["physpages"].limit == 32 * MB
    assert sample.rows["swappages"].limit == 32 * MB
    assert sample.rows["physpages"].failcnt > 0
    assert sample.rows["swappages"].failcnt > 0
    assert sample.totals["oom_kill"] >= 1


def test_numproc_failcnt(driver: V2Driver) -> None:
    apply(driver, CTID, Limits(numproc=10))
    res = _run_inside(driver, [sys.executable, "-c", FORKS])
    assert "refused" in res.stdout
    row = FastReader(driver).read_all([CTID])[CTID].rows["numproc"]
    assert row.failcnt >= 1 and row.limit == 10


def test_cpus_live_and_cpulimit(driver: V2Driver) -> None:
    nproc = [sys.executable, "-c", "import os; print(len(os.sched_getaffinity(0)))"]
    apply(driver, CTID, Limits(cpus=1, cpulimit=50))
    assert _run_inside(driver, nproc).stdout == "1\n"
    with open(os.path.join(driver.controller_dir(CTID, "cpu"), "cpu.max"), encoding="ascii") as fh:
        assert fh.read() == "50000 100000\n"
    apply(driver, CTID, Limits(cpus=2), previous=Limits(cpus=1, cpulimit=50))
    assert _run_inside(driver, nproc).stdout == "2\n"
    apply(driver, CTID, Limits(cpus=1), previous=Limits(cpus=2))
    assert _run_inside(driver, nproc).stdout == "1\n"
