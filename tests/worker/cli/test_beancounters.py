"""vzctl set's beancounter flags, vzubc and vzlist's beancounter columns on real VPSs: a live change
reaches the cgroup files and the VPS sees it, --save survives a restart, a bad value changes
nothing, and the views show the VPS's own counters after it hits a limit."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable

import pytest

from kernel import statefile
from kernel.runtime import Runtime
from kernel.ubc import Row
from worker import vps
from worker.cli import vzubc

pytestmark = pytest.mark.kernel
MiB = 1 << 20
Run = Callable[..., tuple[int, str, str]]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def cgroup(rt: Runtime, ctid: int, controller: str, v1: str, v2: str) -> str:
    name = v1 if rt.cgroups.version == 1 else v2
    with open(os.path.join(rt.cgroups.controller_dir(ctid, controller), name), encoding="ascii") as fh:
        return fh.read().strip()


def pids_max(rt: Runtime, ctid: int) -> str:
    return cgroup(rt, ctid, "pids", "pids.max", "pids.max")


def ram(rt: Runtime, ctid: int) -> int:
    value = cgroup(rt, ctid, "memory", "memory.limit_in_bytes", "memory.max")
    return -1 if value == "max" or int(value) >= 1 << 62 else int(value)


def state(rt: Runtime, ctid: int, env: dict[str, str]) -> tuple[object, ...]:
    """What a `vzctl set` may change: the kernel's limits, the saved limits, CTID.conf."""
    with open(os.path.join(env["CTPANEL_CONF_DIR"], f"{ctid}.conf"), encoding="utf-8") as fh:
        conf = fh.read()
    return ram(rt, ctid), pids_max(rt, ctid), statefile.read_json(vps.beancounters_path(rt, ctid)), conf


def started(run: Run, ctid: int, *create: str) -> str:
    c = str(ctid)
    code, _, err = run("vzctl", "create", c, "--ostemplate", "busybox", *create)
    assert code == 0, err
    assert run("vzctl", "start", c)[0] == 0
    return c


def vzubc_rows(run: Run, ctid: int) -> dict[str, list[str]]:
    code, out, err = run("vzubc", "-v", str(ctid))
    assert code == 0, err
    assert f"CT {ctid}" in out
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) == 6 and cells[0] and not cells[0].startswith(("CT ", "-")):
            rows[cells[0]] = [*cells[1].split(), *cells[2].split(), cells[3], cells[4], cells[5]]
    return rows  # name -> held, bar%, lim%, maxheld, bar%, lim%, barrier, limit, failcnt


def test_live_set_reaches_the_kernel_and_the_views_show_the_hit(
        run: Run, ctid: int, cli_runtime: Runtime, capfd: pytest.CaptureFixture[str]) -> None:
    c = started(run, ctid)
    code, out, err = run("vzctl", "set", c, "--numproc", "12", "--cpus", "1", "--numfile", "500")
    assert code == 0, err
    assert "numproc, cpus, numfile" in out and "will be lost after CT restart" in out
    assert pids_max(cli_runtime, ctid) == "12"
    assert run("vzctl", "exec2", c, "ulimit -n")[1] == "500\n"
    assert run("vzctl", "exec2", c, "nproc")[1] == "1\n"
    assert run("vzctl", "set", c, "--cpus", "2")[0] == 0
    assert run("vzctl", "exec2", c, "nproc")[1] == "2\n"

    # Ground truth: forks inside stop at the limit (each started sleep prints a line).
    loop = "for i in $(seq 30); do sleep 1000 </dev/null >/dev/null 2>&1 & echo ok; done"
    _, out, _ = run("vzctl", "exec2", c, loop)
    forked = out.split().count("ok")
    assert 0 < forked < 12
    inside = len(cli_runtime.cgroups.pids(ctid))
    assert inside <= 12

    rows = vzubc_rows(run, ctid)
    held, limit, failcnt = rows["numproc"][0], rows["numproc"][7], rows["numproc"][8]
    assert (int(held), limit) == (inside, "12")
    assert int(failcnt) > 0

    code, out, _ = run("vzlist", "-H", "-o", "ctid,numproc.b,numproc.l,numproc.f,numproc.m,physpages.l,numfile.l", c)
    assert code == 0
    assert out.split() == [c, "12", "12", failcnt, out.split()[4], "9223372036854775807", "500"]
    assert int(out.split()[4]) >= inside  # maxheld

    assert run("vzctl", "stop", c, "--fast")[0] == 0
    assert run("vzctl", "start", c)[0] == 0
    assert pids_max(cli_runtime, ctid) == "max"  # not saved: the next start has the saved value


def test_save_survives_a_restart_and_stopped_needs_save(run: Run, ctid: int, cli_runtime: Runtime, env) -> None:
    c = started(run, ctid)
    code, out, err = run("vzctl", "set", c, "--ram", "96M", "--numproc", "200:300", "--save")
    assert code == 0, err
    assert "Saved parameters" in out and "lost" not in out
    assert (ram(cli_runtime, ctid), pids_max(cli_runtime, ctid)) == (96 * MiB, "300")
    saved = vps.beancounters(cli_runtime, ctid)
    assert (saved.ram, saved.numproc) == (96 * MiB, 300)
    with open(os.path.join(env["CTPANEL_CONF_DIR"], f"{ctid}.conf"), encoding="utf-8") as fh:
        text = fh.read()
    assert 'PHYSPAGES="0:24576"' in text and 'NUMPROC="300:300"' in text

    assert run("vzctl", "restart", c)[0] == 0
    assert (ram(cli_runtime, ctid), pids_max(cli_runtime, ctid)) == (96 * MiB, "300")

    assert run("vzctl", "stop", c)[0] == 0
    code, _, err = run("vzctl", "set", c, "--numproc", "50")
    assert code == 31 and "not running" in err
    assert vps.beancounters(cli_runtime, ctid).numproc == 300
    code, out, _ = run("vzctl", "set", c, "--numproc", "50", "--save")
    assert code == 0 and "next start: numproc" in out
    # A stopped VPS: barrier and limit from the saved values, no counters.
    assert run("vzlist", "-a", "-H", "-o", "numproc,numproc.l,numproc.f,physpages.b", c)[1].split() == [
        "0", "50", "-", str(96 * MiB // 4096)]
    assert run("vzctl", "start", c)[0] == 0
    assert (ram(cli_runtime, ctid), pids_max(cli_runtime, ctid)) == (96 * MiB, "50")
    assert run("vzctl", "stop", c)[0] == 0
    assert run("vzctl", "destroy", c)[0] == 0
    assert not os.path.exists(vps.beancounters_path(cli_runtime, ctid))


@pytest.mark.parametrize(("flag", "value"), [
    ("--ram", "12X"), ("--numproc", "300:200"), ("--cpumask", "1000-1001"), ("--numfile", "30000"),
    ("--ioprio", "9"), ("--cpulimit", "1.5"), ("--swap", ""),
])
def test_a_bad_value_changes_nothing(run: Run, ctid: int, cli_runtime: Runtime, env, flag: str, value: str) -> None:
    c = started(run, ctid)
    assert run("vzctl", "set", c, "--ram", "64M", "--numproc", "40", "--save")[0] == 0
    before = state(cli_runtime, ctid, env)
    code, _, err = run("vzctl", "set", c, "--hostname", "changed.example.com", "--numproc", "20", flag, value,
                       "--save")
    assert code == 21
    assert f"Bad parameter for {flag}: {value}" in err
    assert state(cli_runtime, ctid, env) == before
    assert cli_runtime.registry.get(ctid).hostname != "changed.example.com"


def test_a_kernel_refusal_puts_the_saved_values_back(run: Run, ctid: int, cli_runtime: Runtime, env) -> None:
    """cgroup v1 (this host) refuses a memory limit below what the VPS holds and cannot reclaim
    (its kernel memory); v2 would take it and reclaim or OOM-kill inside instead."""
    assert cli_runtime.cgroups.version == 1
    c = started(run, ctid)
    assert run("vzctl", "set", c, "--ram", "64M", "--swap", "32M", "--save")[0] == 0
    before = state(cli_runtime, ctid, env)
    memsw = cgroup(cli_runtime, ctid, "memory", "memory.memsw.limit_in_bytes", "memory.swap.max")
    code, _, err = run("vzctl", "set", c, "--ram", "4K", "--save")
    assert code == 1 and "Unable to set UBC parameters" in err
    assert state(cli_runtime, ctid, env) == before
    # The plan lifted memsw before the refused write: it is back too.
    assert cgroup(cli_runtime, ctid, "memory", "memory.memsw.limit_in_bytes", "memory.swap.max") == memsw


def test_create_from_a_sample_applies_its_limits(run: Run, ctid: int, cli_runtime: Runtime) -> None:
    c = started(run, ctid, "--config", "vswap-256m")
    assert ram(cli_runtime, ctid) == 256 * MiB
    assert pids_max(cli_runtime, ctid) == "512"
    assert run("vzctl", "exec2", c, "nproc")[1] == "1\n"  # the sample's cpus=1
    rows = vzubc_rows(run, ctid)
    assert rows["physpages"][7] == "256M" and rows["numproc"][7] == "512"


def test_vzubc_is_a_console_script_and_filters_like_openvz(run: Run, ctid: int) -> None:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        assert tomllib.load(fh)["project"]["scripts"]["vzubc"] == "worker.cli.vzubc:main"
    c = started(run, ctid)
    assert run("vzctl", "set", c, "--numproc", "100")[0] == 0
    out = run("vzubc", c)[1]
    names = [line.split("|")[0].strip() for line in out.splitlines() if line.count("|") == 5]
    assert "numproc" in names and "kmemsize" not in names  # rows without a barrier need -v
    assert "kmemsize" in vzubc_rows(run, ctid)
    assert run("vzubc", "-q", c)[1] == ""  # nothing failed or near its barrier
    assert run("vzubc", "99999")[0] == 1


def test_quiet_keeps_failures_and_rows_near_their_barrier() -> None:
    assert vzubc.important(Row(1, 1, 10, 10, 1))
    assert vzubc.important(Row(6, 6, 10, 10, 0))
    assert vzubc.important(Row(1, 9, 10, 10, 0))
    assert not vzubc.important(Row(1, 1, 10, 10, 0))
