"""Inside a VPS: its own beancounter table and lxcfs's /proc files, served by the node's supervised
file servers; a VPS never sees another's numbers; a dead server fails reads without hanging the
VPS, and its restart binds the files again into running VPSs."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

from kernel import cgroups
from kernel.config import NodeConfig
from kernel.runtime import CreateSpec, Runtime, StartOptions
from kernel.ubc import Limits, inside, limits_hook
from tests.kernel import leftovers
from worker.nodefiles import NodeFiles
from worker.supervisor.server import Supervisor

pytestmark = pytest.mark.kernel
MB = 1 << 20
LIMITS = {2601: Limits(ram=64 * MB, numproc=50, cpus=1), 2602: Limits(ram=128 * MB, numproc=70)}
TABLE = f"cat {inside.IN_VPS_PATH}"


@pytest.fixture
def files(node_config: NodeConfig, subreaper: None) -> Iterator[tuple[Runtime, NodeFiles]]:
    top = tempfile.mkdtemp(prefix="ctpanel-nodefiles-")
    lxcfs, ubc = os.path.join(top, "lxcfs"), os.path.join(top, "ubc")
    driver = cgroups.detect(node_config.cgroup_prefix)
    rt = Runtime(node_config, cgroup_driver=driver, lxcfs=lxcfs,
                 hooks={"limits": [limits_hook(driver, lambda ctid: LIMITS.get(ctid, Limits()))],
                        "volume": [inside.start_hook(ubc)]})
    rt.templates.ensure_busybox()
    served = NodeFiles(rt, lxcfs=lxcfs, ubc=ubc)
    try:
        served.start()
        for ctid in LIMITS:
            rt.create(CreateSpec(ctid=ctid, template="busybox"))
            rt.start(ctid, StartOptions())
        yield rt, served
    finally:
        for ctid in LIMITS:
            leftovers.force_remove(rt, ctid)
        served.stop()
        shutil.rmtree(top, ignore_errors=True)
    for ctid in LIMITS:
        assert leftovers.of(rt, ctid) == []


def sh(rt: Runtime, ctid: int, script: str) -> tuple[int, str]:
    # The timeout only guards against a hang (the property under test): it fails the test.
    result = rt.exec(ctid, ["sh", "-c", script], timeout=60)
    return result.returncode, result.stdout.decode()


def _own_view(rt: Runtime, ctid: int, other: int) -> None:
    code, table = sh(rt, ctid, TABLE)
    assert code == 0
    lines = table.splitlines()
    assert lines[0] == "Version: 2.5"
    assert lines[2].split()[0] == f"{ctid}:"
    assert f"{other}:" not in table
    numproc = next(line.split() for line in lines if "numproc" in line)
    assert numproc[-3:-1] == [str(LIMITS[ctid].numproc)] * 2  # barrier, limit
    # procps's `free` reads /proc/meminfo (busybox's asks sysinfo(2), which no container changes)
    code, mem = sh(rt, ctid, "grep MemTotal /proc/meminfo")
    assert code == 0
    assert mem.split()[1] == str(LIMITS[ctid].ram // 1024)


def test_each_vps_reads_its_own_numbers(files) -> None:
    rt, _ = files
    a, b = LIMITS
    _own_view(rt, a, b)
    _own_view(rt, b, a)
    assert sh(rt, a, "nproc; grep -c ^processor /proc/cpuinfo") == (0, "1\n1\n")
    code, mounts = sh(rt, a, "grep -E ' /proc/meminfo | /run/ctpanel/user_beancounters ' /proc/self/mountinfo")
    assert code == 0 and len(mounts.splitlines()) == 2
    assert " ro," in next(line for line in mounts.splitlines() if "user_beancounters" in line)
    assert sh(rt, a, f"echo x > {inside.IN_VPS_PATH}")[0] != 0
    assert sh(rt, a, "echo x > /proc/meminfo")[0] != 0


def test_uptime_stat_and_loadavg_describe_the_vps(files) -> None:
    """lxcfs's other files: /proc/uptime counts from the VPS's start (the node has run for longer),
    /proc/stat lists the VPS's CPUs only (cpus=1 for the first VPS), /proc/loadavg is the VPS's
    own (lxcfs -l): idle VPSs on a busy node show no load."""
    rt, _ = files
    a, _b = LIMITS
    with open("/proc/uptime") as fh:
        host_uptime = float(fh.read().split()[0])
    code, out = sh(rt, a, "cat /proc/uptime; grep -c '^cpu[0-9]' /proc/stat; cat /proc/loadavg; "
                          "grep ' /proc/uptime \\| /proc/stat \\| /proc/loadavg ' /proc/self/mountinfo | wc -l")
    assert code == 0, out
    uptime, cpus, loadavg, mounts = out.splitlines()
    assert float(uptime.split()[0]) < min(600.0, host_uptime - 60), (uptime, host_uptime)
    assert cpus == "1"
    assert float(loadavg.split()[0]) < 1.0 and mounts == "3", (loadavg, mounts)


def test_a_dead_server_fails_reads_and_its_restart_restores_them(files) -> None:
    rt, served = files
    a, b = LIMITS
    for server in served.servers:
        server.proc.kill()
        server.proc.wait()
    code, _ = sh(rt, a, TABLE)
    assert code != 0
    code, _ = sh(rt, a, "cat /proc/meminfo")
    assert code != 0
    assert sh(rt, a, "echo alive") == (0, "alive\n")
    assert rt.status(a).running
    assert sorted(served.check()) == ["beancounter file server", "lxcfs"]
    _own_view(rt, a, b)
    _own_view(rt, b, a)


def test_the_supervisor_restarts_a_dead_server_and_binds_again(files, tmp_path) -> None:
    rt, served = files
    a, b = LIMITS
    supervisor = Supervisor(rt, path=str(tmp_path / "supervisor.sock"), files=served)
    loop = threading.Thread(target=supervisor.serve, daemon=True)
    loop.start()
    try:
        lxcfs = next(server for server in served.servers if server.name == "lxcfs")
        dead = lxcfs.proc
        dead.kill()
        dead.wait()
        deadline = time.monotonic() + 30
        while lxcfs.proc is dead or sh(rt, a, "cat /proc/meminfo")[0] != 0:  # its next tick
            assert time.monotonic() < deadline, "the supervisor did not restart lxcfs"
            time.sleep(0.2)
        _own_view(rt, a, b)
        _own_view(rt, b, a)
    finally:
        supervisor.stopping = True
        loop.join(30)
    assert not loop.is_alive()
    assert not any(server.alive() for server in served.servers)  # they stop with the supervisor


def test_a_new_supervisor_ends_the_servers_a_crashed_one_left(files) -> None:
    rt, served = files
    a, b = LIMITS
    # A supervisor killed with SIGKILL leaves its servers running; the next one's NodeFiles
    # (same mount points) ends them, starts its own and binds them into the running VPSs.
    again = NodeFiles(rt, lxcfs=served.lxcfs, ubc=served.ubc)
    again.start()
    try:
        for old in served.servers:
            assert old.proc.wait(30) is not None  # killed by the new supervisor's start
        assert all(server.alive() for server in again.servers)
        _own_view(rt, a, b)
        _own_view(rt, b, a)
    finally:
        again.stop()


def test_the_pre_init_binds_the_files_volume_hooks_name(node_config: NodeConfig, subreaper: None, tmp_path) -> None:
    """`StartContext.binds` (where the beancounter hook puts the VPS's table): the pre-init binds
    each file read-only at its path while it builds the mount tree, making the missing directories
    and file; a source that does not open (its server is down) is left out and the VPS starts."""
    served = tmp_path / "served"
    served.write_text("served by the node\n")
    wanted = [(str(served), "/run/ctpanel/new/served"), (str(tmp_path / "absent"), "/run/absent")]
    ctid = 2603
    rt = Runtime(node_config, lxcfs=None, hooks={"volume": [lambda ctx: ctx.binds.extend(wanted)]})
    rt.templates.ensure_busybox()
    rt.create(CreateSpec(ctid=ctid, template="busybox"))
    try:
        rt.start(ctid, StartOptions())
        assert sh(rt, ctid, "cat /run/ctpanel/new/served") == (0, "served by the node\n")
        code, mounts = sh(rt, ctid, "grep ' /run/ctpanel/new/served ' /proc/self/mountinfo")
        assert code == 0 and len(mounts.splitlines()) == 1
        assert all(flag in mounts.split()[5].split(",") for flag in ("ro", "nosuid", "nodev", "noexec")), mounts
        assert sh(rt, ctid, "echo x > /run/ctpanel/new/served")[0] != 0
        assert sh(rt, ctid, "test -e /run/absent")[0] != 0
        assert served.read_text() == "served by the node\n"
    finally:
        leftovers.force_remove(rt, ctid)
    assert leftovers.of(rt, ctid) == []
