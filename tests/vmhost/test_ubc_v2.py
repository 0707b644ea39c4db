"""Beancounters on cgroup v2 in the vm tier's guest (behaviour only): the same `Limits` as on
the v1 host, applied by kernel/ubc to a VPS cgroup made by the v2 driver, read back by the fast
tier; swap limited with the guest's swap file present."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
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
    assert sample.totals["oom_kill"] >= 1
    # swappages' failcnt (memory.swap.events max) is not asserted: the kernel may OOM-kill the hog
    # before its swap use reaches swap.max (seen once under emulation: 256 KiB of swap held, the
    # hog killed); `fits` above shows the swap limit holding.


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


SPIN = "import time\nend = time.monotonic() + 1.5\nwhile time.monotonic() < end:\n    pass\n"


def _cpu_stat(driver: V2Driver) -> dict[str, int]:
    with open(os.path.join(driver.controller_dir(CTID, "cpu"), "cpu.stat"), encoding="ascii") as fh:
        return {key: int(value) for key, value in (line.split() for line in fh)}


def test_cpulimit_throttles_a_cpu_hog(driver: V2Driver) -> None:
    """Enforcement, not a read-back: the kernel counts the periods it throttled the VPS in
    (cpu.stat), which stays 0 without a limit. No share is measured here: emulated CPUs are
    no place for ratios (the v1 host measures them)."""
    assert _run_inside(driver, [sys.executable, "-c", SPIN]).returncode == 0
    assert _cpu_stat(driver)["nr_throttled"] == 0  # the control: no limit, no throttling
    apply(driver, CTID, Limits(cpulimit=25))
    assert _run_inside(driver, [sys.executable, "-c", SPIN]).returncode == 0
    stat = _cpu_stat(driver)
    assert stat["nr_throttled"] > 0 and stat["throttled_usec"] > 0, stat


def test_a_tmpfs_fill_is_charged_to_the_vps_ram(driver: V2Driver, tmp_path) -> None:
    """/dev/shm and tmpfs pages count as the VPS's memory: a fill past ram + swap stops inside
    the VPS (memory.events max/oom), not on the node."""
    mount = tmp_path / "shm"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(mount)], check=True)
    try:
        apply(driver, CTID, Limits(ram=32 * MB, swap=MB))
        fill = _run_inside(driver, ["dd", "if=/dev/zero", f"of={mount}/fill", "bs=1M", "count=96"])
        assert fill.returncode != 0, fill.stderr
        assert os.path.getsize(mount / "fill") < 48 * MB
        with open(os.path.join(driver.controller_dir(CTID, "memory"), "memory.events"), encoding="ascii") as fh:
            events = {key: int(value) for key, value in (line.split() for line in fh)}
        assert events["max"] > 0 and events["oom_kill"] >= 1, events
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_iolimit_caps_a_direct_io_writer_on_v2(driver: V2Driver) -> None:
    """io.max on the device: a direct-IO writer in the VPS's cgroup stays at the limit. An upper
    bound only, which emulation can only help to hold: the writer runs slower, never faster."""
    disk = os.environ["CTPANEL_VM_SPARE_DISK"]
    st = os.stat(disk)
    device = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    applied = apply(driver, CTID, Limits(iolimit=5 * MB), device=device)
    assert "iolimit" not in applied.skipped
    with open(os.path.join(driver.controller_dir(CTID, "io"), "io.max"), encoding="ascii") as fh:
        line = next(line for line in fh if line.startswith(device + " "))
    assert f"wbps={5 * MB}" in line.split(), line
    start = time.monotonic()
    write = _run_inside(driver, ["dd", "if=/dev/zero", f"of={disk}", "bs=1M", "count=16", "oflag=direct"])
    assert write.returncode == 0, write.stderr
    assert 16 * MB / (time.monotonic() - start) <= 6_000_000
