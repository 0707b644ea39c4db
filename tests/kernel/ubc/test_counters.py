"""The fast reader against a dictionary cgroupfs: mapping, kept peaks, monotonic totals."""

from __future__ import annotations

import pytest

from kernel.cgroups import V1Driver, V2Driver
from kernel.ubc.counters import UNLIMITED, FastReader, Ledger
from tests.kernel.ubc.fakefs import DictFS

pytestmark = pytest.mark.unit
CG = "/cg/pre/101"


def _v2(**over: str) -> DictFS:
    files = {
        "memory.current": "1000\n", "memory.peak": "5000\n", "memory.max": "8192\n",
        "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
        "memory.swap.current": "10\n", "memory.swap.max": "max\n",
        "memory.swap.events": "high 0\nmax 2\nfail 0\n",
        "memory.stat": "anon 4096\nkernel 300\nsock 20\nshmem 4096\n",
        "pids.current": "4\n", "pids.max": "max\n", "pids.events": "max 7\n",
        "cpu.stat": "usage_usec 1500\nuser_usec 1000\n",
    }
    files.update(over)
    return DictFS({f"{CG}/{k}": v for k, v in files.items()}, {"/cg/pre", CG})


def test_v2_rows_and_kept_peaks() -> None:
    fs = _v2()
    sample = FastReader(V2Driver("pre", "/cg", fs=fs)).read_all()[101]
    rows = sample.rows
    assert (rows["physpages"].held, rows["physpages"].maxheld, rows["physpages"].limit) == (1000, 5000, 8192)
    assert rows["physpages"].failcnt == 3 and sample.totals["oom_kill"] == 1
    assert rows["swappages"].limit == UNLIMITED and rows["swappages"].failcnt == 2
    assert rows["numproc"].failcnt == 7 and rows["numproc"].limit == UNLIMITED
    assert rows["kmemsize"].held == 300 and rows["tcpsndbuf"].held == 20 and rows["shmpages"].held == 4096
    assert sample.totals["cpu_ns"] == 1_500_000
    assert sorted(sample.kept) == ["kmemsize", "numproc", "shmpages", "swappages", "tcpsndbuf"]
    assert sample.gauges == {"ram_bytes": 1000, "swap_bytes": 10, "processes": 4}
    usage = sample.to_usage()
    assert usage["beancounters"]["physpages"]["failcnt"] == 3 and usage["epoch"] == sample.epoch


def test_kept_peak_is_the_largest_seen() -> None:
    fs = _v2()
    reader = FastReader(V2Driver("pre", "/cg", fs=fs))
    reader.read_all()
    fs.files[f"{CG}/pids.current"] = "9\n"
    reader.read_all()
    fs.files[f"{CG}/pids.current"] = "2\n"
    row = reader.read_all()[101].rows["numproc"]
    assert (row.held, row.maxheld) == (2, 9)


def test_totals_survive_a_recreated_cgroup(tmp_path) -> None:
    path = str(tmp_path / "ledger.json")
    fs = _v2()
    reader = FastReader(V2Driver("pre", "/cg", fs=fs), Ledger(path))
    epoch = reader.read_all()[101].epoch
    # The VPS restarts: a new cgroup, kernel counters from zero, then a few more events.
    fs.files.update({f"{CG}/memory.events": "max 1\noom_kill 0\n", f"{CG}/pids.events": "max 2\n",
                     f"{CG}/cpu.stat": "usage_usec 100\n"})
    again = FastReader(V2Driver("pre", "/cg", fs=fs), Ledger(path)).read_all()[101]
    assert again.epoch == epoch
    assert again.rows["physpages"].failcnt == 4
    assert again.rows["numproc"].failcnt == 9
    assert again.totals["cpu_ns"] == 1_600_000
    assert again.totals["oom_kill"] == 1


def test_ledger_identity_change_resets_peaks() -> None:
    ledger = Ledger(None)
    assert ledger.observe(101, 11, {"x": 5}) == {"x": 5}
    ledger.peak(101, "numfile", 40)
    assert ledger.observe(101, 12, {"x": 7}) == {"x": 12}
    assert ledger.peak(101, "numfile", 3) == 3
    ledger.forget(set())
    assert ledger.observe(101, 12, {"x": 1}) == {"x": 1}


def test_v1_swap_is_memsw_minus_memory() -> None:
    mem = "/cg/memory/pre/101"
    files = {
        f"{mem}/memory.usage_in_bytes": "1000\n", f"{mem}/memory.max_usage_in_bytes": "2000\n",
        f"{mem}/memory.limit_in_bytes": "4096\n", f"{mem}/memory.failcnt": "5\n",
        f"{mem}/memory.memsw.usage_in_bytes": "1500\n", f"{mem}/memory.memsw.limit_in_bytes": "6144\n",
        f"{mem}/memory.memsw.failcnt": "1\n",
        f"{mem}/memory.stat": "cache 0\nshmem 0\ntotal_cache 0\ntotal_shmem 8192\n",
        f"{mem}/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        "/cg/pids/pre/101/pids.current": "3\n", "/cg/pids/pre/101/pids.peak": "8\n",
        "/cg/pids/pre/101/pids.max": "100\n", "/cg/pids/pre/101/pids.events": "max 0\n",
        "/cg/cpuacct/pre/101/cpuacct.usage": "123\n",
    }
    dirs = {"/cg/memory/pre", mem}
    mounts = {c: f"/cg/{c}" for c in ("memory", "pids", "cpuacct")}
    sample = FastReader(V1Driver("pre", mounts, fs=DictFS(files, dirs))).read_all()[101]
    swap = sample.rows["swappages"]
    assert (swap.held, swap.limit, swap.failcnt) == (500, 2048, 1)
    assert sample.rows["physpages"].failcnt == 5 and sample.totals["oom_kill"] == 2
    assert (sample.rows["numproc"].held, sample.rows["numproc"].maxheld, sample.rows["numproc"].limit) == (3, 8, 100)
    assert "kmemsize" not in sample.rows  # kmem files absent: the row is left out, not zeroed
    assert sample.rows["shmpages"].held == 8192  # hierarchical total_shmem, not the outer's own
    # The in-VPS table's reader: the same rows without the totals' files.
    for name in ("memory/pre/101/memory.oom_control", "cpuacct/pre/101/cpuacct.usage"):
        del files[f"/cg/{name}"]
    lean = FastReader(V1Driver("pre", mounts, fs=DictFS(files, dirs)), totals=False).read_all()[101]
    assert lean.rows == sample.rows and lean.totals == {"cpu_ns": 0, "oom_kill": 0}


@pytest.mark.parametrize(("local", "expected"), [(False, 12), (True, 7)])
def test_v2_refused_forks_before_and_after_hierarchical_events(local: bool, expected: int) -> None:
    fs = _v2()
    fs.files[f"{CG}/vps/pids.events"] = "max 5\n"
    if local:
        fs.files[f"{CG}/pids.events.local"] = "max 0\n"
    assert FastReader(V2Driver("pre", "/cg", fs=fs)).read_all()[101].rows["numproc"].failcnt == expected


def test_the_in_vps_tables_reader_shows_the_kernels_counters_since_the_start() -> None:
    """totals=False (the in-VPS table): a restarted VPS's failcnt starts again, as OpenVZ's
    table does, where the sampler's reader keeps a monotonic total."""
    fs = _v2()
    lean = FastReader(V2Driver("pre", "/cg", fs=fs), totals=False)
    full = FastReader(V2Driver("pre", "/cg", fs=fs))
    assert lean.read_one(101).rows["physpages"].failcnt == full.read_one(101).rows["physpages"].failcnt == 3
    fs.files[f"{CG}/memory.events"] = "max 1\noom_kill 0\n"  # the VPS restarted: a new cgroup
    assert lean.read_one(101).rows["physpages"].failcnt == 1
    assert full.read_one(101).rows["physpages"].failcnt == 4
