"""Limits → cgroup writes (pure plan, then through a dictionary cgroupfs)."""

from __future__ import annotations

import pytest

from kernel.cgroups import V1Driver, V2Driver
from kernel.errors import NotSupported
from kernel.ubc.apply import (
    Applied,
    _write_all,
    backing_device,
    choose_cpus,
    cpu_shares,
    cpu_weight,
    fields_of,
    plan,
)
from kernel.ubc.limits import Limits
from tests.kernel.ubc.fakefs import DictFS

pytestmark = pytest.mark.unit
MB = 1 << 20


def _values(writes, version_file):
    return [w.value for w in writes if w.file == version_file]


def test_v1_memory_order_and_swap_meaning() -> None:
    writes = plan(1, Limits(ram=512 * MB, swap=256 * MB), cpus=[0], host_cpus=[0, 1], device=None)
    files = [w.file for w in writes[:3]]
    assert files == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    assert [w.value for w in writes[:3]] == ["-1", str(512 * MB), str(768 * MB)]
    unlimited = plan(1, Limits(ram=512 * MB), cpus=[0], host_cpus=[0], device=None)
    assert _values(unlimited, "memory.memsw.limit_in_bytes") == ["-1", "-1"]


@pytest.mark.parametrize("version", [1, 2])
def test_every_write_names_the_fields_it_carries(version: int) -> None:
    """`apply(only=...)` keeps the writes whose fields were given; a file it cannot place would be lost."""
    writes = plan(version, Limits(ram=MB, swap=MB, numproc=5, cpus=1, cpulimit=50, iolimit=MB, iopslimit=9),
                  cpus=[0], host_cpus=[0, 1], device="8:0")
    kept = {w.file for w in writes if fields_of(w.file) & {"numproc"}}
    assert kept == {"pids.max"}
    cpu = {w.file for w in writes if "cpulimit" in fields_of(w.file)}
    assert cpu == ({"cpu.cfs_period_us", "cpu.cfs_quota_us"} if version == 1 else {"cpu.max"})
    assert "cpuunits" in fields_of("cpu.shares" if version == 1 else "cpu.weight")
    assert all(fields_of(w.file) for w in writes)
    with pytest.raises(ValueError):
        fields_of("hugetlb.2MB.limit_in_bytes")


def test_v2_swap_alone_and_cpu() -> None:
    writes = plan(2, Limits(ram=512 * MB, swap=256 * MB, cpus=2, cpulimit=150, cpuunits=500, numproc=64),
                  cpus=[0, 1], host_cpus=[0, 1, 2], device="8:0")
    got = {w.file: w.value for w in writes}
    assert got["memory.max"] == str(512 * MB)
    assert got["memory.swap.max"] == str(256 * MB)
    assert got["cpu.max"] == "150000 100000"
    assert got["cpu.weight"] == "50"
    assert got["pids.max"] == "64"
    assert got["cpuset.cpus"] == "0-1"
    assert got["io.max"] == "8:0 rbps=max wbps=max riops=max wiops=max"
    assert all(not w.inner for w in writes)


def test_v1_cpuset_widens_before_narrowing_and_io() -> None:
    writes = plan(1, Limits(cpus=1, cpulimit=25, iolimit=5 * MB), cpus=[1], host_cpus=[0, 1], device="7:3")
    cpuset = [(w.value, w.inner) for w in writes if w.file == "cpuset.cpus"]
    assert cpuset == [("0-1", False), ("1", True), ("1", False)]
    assert _values(writes, "cpu.cfs_quota_us") == ["25000"]
    assert _values(writes, "blkio.throttle.write_bps_device") == [f"7:3 {5 * MB}"]
    assert _values(writes, "blkio.throttle.read_iops_device") == ["7:3 0"]
    assert all(w.inner for w in writes if w.controller == "blkio")  # v1 throttling is not hierarchical


def test_cpu_choice_and_weights() -> None:
    assert choose_cpus(Limits(), [0, 1, 2, 3], 101) == [0, 1, 2, 3]
    assert choose_cpus(Limits(cpus=2), [0, 1, 2, 3], 103) == [0, 3]
    assert choose_cpus(Limits(cpus=1, cpumask="2-3"), [0, 1, 2, 3], 100) == [2]
    with pytest.raises(NotSupported):
        choose_cpus(Limits(cpumask="8"), [0, 1], 100)
    assert (cpu_shares(0), cpu_shares(1000), cpu_shares(1)) == (1024, 1024, 2)
    assert (cpu_weight(0), cpu_weight(1000), cpu_weight(500000)) == (100, 100, 10000)


def test_writes_land_on_outer_and_optional_memsw_is_skipped() -> None:
    root = "/cg"
    mounts = {c: f"{root}/{c}" for c in ("memory", "pids", "cpu", "cpuset")}
    driver = V1Driver("pre", mounts, fs=DictFS())
    fs = driver.fs
    assert isinstance(fs, DictFS)
    for c, m in mounts.items():
        for name in ("memory.limit_in_bytes", "pids.max", "cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us",
                     "cpuset.cpus"):
            if name.startswith(c + "."):
                fs.files[f"{m}/pre/107/{name}"] = ""
                fs.files[f"{m}/pre/107/vps/{name}"] = ""
    done = Applied()
    _write_all(driver, 107, plan(1, Limits(ram=MB, numproc=9), cpus=[0], host_cpus=[0], device=None), done)
    assert ("/cg/memory/pre/107/memory.limit_in_bytes", str(MB)) in fs.writes
    assert ("/cg/pids/pre/107/pids.max", "9") in fs.writes
    assert not any(p.startswith("/cg/pids/pre/107/vps") for p, _ in fs.writes)
    assert "memory.memsw.limit_in_bytes" in done.skipped


def test_v2_driver_controller_dir_is_unified() -> None:
    driver = V2Driver("pre", "/cg", fs=DictFS())
    assert driver.controller_dir(105, "memory") == "/cg/pre/105"
    assert driver.controller_dir(105, "cpuset", inner=True) == "/cg/pre/105/vps"


def test_backing_device_from_mountinfo(tmp_path) -> None:
    info = (
        "25 1 254:1 / / rw - ext4 /dev/vda1 rw\n"
        "40 25 7:3 / /vz/private/101 rw - ext4 /dev/loop3 rw\n"
        "41 25 0:55 / /vz/private/102 rw - tmpfs tmpfs rw\n"
    )
    assert backing_device("/vz/private/101", info) == "7:3"
    assert backing_device("/vz/private/101/etc", info) == "7:3"
    assert backing_device("/vz/private/102", info) is None
    assert backing_device("/srv", info) == "254:1"
