"""lxcfs, where it runs: the VPS's /proc/meminfo and friends describe its own cgroup."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from kernel import syscalls as sc
from kernel.config import NodeConfig
from kernel.errors import KernelError
from kernel.runtime import CreateSpec, Runtime
from tests.kernel import leftovers

pytestmark = pytest.mark.kernel


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == path for line in fh)


@pytest.fixture
def lxcfs():
    """A private lxcfs instance on a temporary mount point (stopped and unmounted afterwards)."""
    if not shutil.which("lxcfs") or not os.path.exists("/dev/fuse"):
        pytest.fail("lxcfs and /dev/fuse are part of the node set-up (./ctl installs lxcfs)")
    top = tempfile.mkdtemp(prefix="ctpanel-lxcfs-")
    path = os.path.join(top, "lxcfs")
    os.mkdir(path)
    proc = subprocess.Popen(["lxcfs", "-f", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _servers[path] = proc
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(path, "proc", "meminfo")):
            assert proc.poll() is None and time.monotonic() < deadline, "lxcfs did not come up"
            time.sleep(0.05)
        yield path
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        while _mounted(path):
            with contextlib.suppress(KernelError):
                sc.umount2(path, sc.MNT_DETACH)
        shutil.rmtree(top, ignore_errors=True)
        del _servers[path]


_servers: dict[str, subprocess.Popen[bytes]] = {}


def test_meminfo_shows_the_vps_memory_limit(node_config: NodeConfig, subreaper, runtime, lxcfs):
    rt = Runtime(node_config, lxcfs=lxcfs)
    ctid = 960
    try:
        rt.create(CreateSpec(ctid=ctid, template="busybox"))
        rt.start(ctid)
        outer = rt.cgroups.paths(ctid).outer
        if "memory" in outer:  # v1
            limit_file = os.path.join(outer["memory"], "memory.limit_in_bytes")
        else:  # v2: limits on the outer cgroup
            limit_file = os.path.join(outer["unified"], "memory.max")
        if not os.path.exists(limit_file):
            pytest.fail(f"no memory controller for the VPS ({limit_file})")
        with open(limit_file, "w") as fh:
            fh.write(str(256 * 1024 * 1024))
        result = rt.exec(ctid, ["sh", "-c", "grep MemTotal /proc/meminfo; grep ' /proc/meminfo ' /proc/self/mountinfo"])
        lines = result.stdout.decode().splitlines()
        assert lines[0].split()[1] == str(256 * 1024), lines
        assert "fuse.lxcfs" in lines[1]
        rt.stop(ctid, fast=True)
        rt.destroy(ctid)
        assert leftovers.of(rt, ctid) == []
    finally:
        leftovers.force_remove(rt, ctid)


def test_without_lxcfs_the_real_proc_files_stay(runtime, make_vps):
    assert runtime.lxcfs is None
    ctid = make_vps()
    result = runtime.exec(ctid, ["sh", "-c", "grep -c ' /proc/meminfo ' /proc/self/mountinfo"])
    assert result.stdout.strip() == b"0"


def test_a_dead_lxcfs_does_not_stop_a_start(node_config: NodeConfig, subreaper, runtime, lxcfs):
    """lxcfs killed, its mount left behind (reads fail with ENOTCONN): a VPS still starts, with
    the real /proc files, and the node's `Runtime` uses its own lxcfs mount by default."""
    assert Runtime(node_config).lxcfs == node_config.lxcfs_mount != lxcfs
    server = _servers[lxcfs]
    server.kill()
    server.wait()
    with pytest.raises(OSError):
        os.statvfs(lxcfs)  # statfs always asks the server
    rt = Runtime(node_config, lxcfs=lxcfs)
    ctid = 961
    try:
        rt.create(CreateSpec(ctid=ctid, template="busybox"))
        rt.start(ctid)
        script = "grep -c ' /proc/meminfo ' /proc/self/mountinfo; grep -c MemTotal /proc/meminfo"
        result = rt.exec(ctid, ["sh", "-c", script])
        assert result.stdout.split() == [b"0", b"1"]
        rt.stop(ctid, fast=True)
        rt.destroy(ctid)
        assert leftovers.of(rt, ctid) == []
    finally:
        leftovers.force_remove(rt, ctid)
