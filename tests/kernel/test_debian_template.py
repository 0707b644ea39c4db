"""The debian-12 template (debootstrap minbase + systemd) boots as a VPS with systemd as PID 1.

Slow: the first run on a machine bootstraps Debian from the mirror (2 to 3 minutes); later runs
import the machine's cached tarball (/var/cache/ctpanel/templates). On this v1 host systemd
runs on the delegated subtree of the controller-less cgroup2 mount.
"""

from __future__ import annotations

import os
import time

import pytest

from kernel import debootstrap
from kernel import syscalls as sc
from kernel.runtime import CreateSpec, Runtime, _signal
from tests.kernel import leftovers

pytestmark = [pytest.mark.kernel, pytest.mark.slow, pytest.mark.timeout(1800)]
CTID = 990
BOUND = 120.0  # seconds; a bound for a hung boot, not a timing assertion


def sh(rt: Runtime, script: str) -> tuple[int, str]:
    result = rt.exec(CTID, ["sh", "-c", script], timeout=BOUND)
    return result.returncode, result.stdout.decode()


def booted(rt: Runtime) -> str:
    """`systemctl is-system-running --wait` once systemd answers: before it made /run/systemd/system
    the answer is "offline", before its private socket "Failed to connect to bus"."""
    deadline = time.monotonic() + BOUND
    while True:
        result = rt.exec(CTID, ["systemctl", "is-system-running", "--wait"], timeout=BOUND)
        state = result.stdout.decode().strip()
        early = state == "offline" or b"Failed to connect to bus" in result.stderr
        if not early or time.monotonic() > deadline:
            return state or result.stderr.decode()
        time.sleep(0.1)


@pytest.fixture(scope="module")
def debian(runtime: Runtime) -> str:
    return debootstrap.ensure_debian(runtime.templates).meta.name


def test_debian_boots_with_systemd_as_pid_1_and_stops_cleanly(runtime: Runtime, debian: str) -> None:
    rt = runtime
    try:
        record = rt.create(CreateSpec(ctid=CTID, template=debian, hostname="deb12.example.com"))
        assert (record.halt_signal, record.reboot_signal) == ("SIGRTMIN+4", "SIGINT")
        rt.start(CTID)
        assert booted(rt) == "running"  # default target reached, no unit failed
        code, release = sh(rt, "cat /etc/os-release")
        assert code == 0 and "ID=debian" in release.split() and 'VERSION_ID="12"' in release.split()
        assert sh(rt, "cat /proc/1/comm; readlink /proc/1/exe; hostname") == (
            0, "systemd\n/usr/lib/systemd/systemd\ndeb12.example.com\n")
        code, cgroup = sh(rt, "grep ^0:: /proc/1/cgroup; stat -fc %T /sys/fs/cgroup")
        assert cgroup.split()[-1] == "cgroup2fs"  # the delegated cgroup2 subtree

        # The halt signal is honoured: systemd powers off by itself (a kill would read "killed").
        pid = rt.status(CTID).init_pid
        assert pid is not None
        pidfd = sc.pidfd_open(pid)
        try:
            sc.pidfd_send_signal(pidfd, _signal(record.halt_signal))
        finally:
            os.close(pidfd)
        leftovers.wait_exit(pid, BOUND)
        ended = rt.collect(CTID)
        assert ended is not None and ended.reason == "poweroff"

        # reboot inside is told apart; then the stop verb and destroy leave nothing.
        rt.start(CTID)
        assert booted(rt) == "running"
        pid = rt.status(CTID).init_pid
        assert pid is not None
        rt.exec(CTID, ["systemctl", "reboot"], timeout=BOUND)
        leftovers.wait_exit(pid, BOUND)
        ended = rt.collect(CTID)
        assert ended is not None and ended.reason == "reboot"
        rt.start(CTID)
        assert booted(rt) == "running"
        assert not rt.stop(CTID, timeout=BOUND).running
        assert leftovers.of(rt, CTID, record.id_start) == ["registry entry", "id range", "volume"]
        rt.destroy(CTID)
        assert leftovers.of(rt, CTID, record.id_start) == []
    finally:
        leftovers.force_remove(rt, CTID)
