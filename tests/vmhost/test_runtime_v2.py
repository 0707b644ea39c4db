"""The runtime's lifecycle on pure cgroup v2 (the vm tier's guest, as on production nodes): the
verbs tests/kernel/test_runtime.py checks on this v1 host, here on the v2 driver with a delegated
inner cgroup: create, start, exec, freeze/thaw, reboot inside, kill-all (stop --fast), halt, destroy."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel import cgroups
from kernel.errors import Busy
from kernel.runtime import CreateSpec, Runtime, StartOptions
from tests.kernel import leftovers
from tests.vmhost.conftest import vm_runtime

pytestmark = pytest.mark.vm
CTID = 4242
BOUND = 300.0  # seconds: emulation is slow; a bound for a hang, not a timing assertion
OPTIONS = StartOptions(timeout=BOUND)


@pytest.fixture
def rt(scratch: Path) -> Iterator[Runtime]:
    with vm_runtime(scratch, CTID) as runtime:
        yield runtime


def sh(rt: Runtime, script: str) -> tuple[int, str]:
    result = rt.exec(CTID, ["sh", "-c", script], timeout=BOUND)
    return result.returncode, result.stdout.decode()


def test_lifecycle_on_pure_cgroup_v2(rt: Runtime) -> None:
    assert isinstance(rt.cgroups, cgroups.V2Driver)
    record = rt.create(CreateSpec(ctid=CTID, template="busybox", hostname="vm1.example.com"))
    assert rt.start(CTID, OPTIONS).running
    assert sh(rt, "cat /proc/1/comm; hostname; grep ^0:: /proc/self/cgroup") == (
        0, "init\nvm1.example.com\n0::/\n")  # busybox init is PID 1; the inner cgroup is the VPS's root
    inner = rt.cgroups.paths(CTID).inner["unified"]
    assert os.stat(inner).st_uid == record.id_start  # delegated to the VPS's root
    assert os.stat(rt.cgroups.paths(CTID).outer["unified"]).st_uid == 0  # limits stay the host's

    rt.freeze(CTID)
    assert rt.status(CTID).frozen
    with pytest.raises(Busy):
        rt.exec(CTID, ["true"])  # would freeze with the VPS
    rt.thaw(CTID)
    assert sh(rt, "echo alive") == (0, "alive\n")

    pid = rt.status(CTID).init_pid
    assert pid is not None
    rt.exec(CTID, ["reboot"], timeout=BOUND)
    leftovers.wait_exit(pid, BOUND)
    ended = rt.collect(CTID)
    assert ended is not None and ended.reason == "reboot"
    assert rt.start(CTID, OPTIONS).init_pid != pid

    # kill-all: stop --fast takes every process of the VPS, not only init (cgroup.kill).
    assert sh(rt, "for i in 1 2 3; do sleep 1000 </dev/null >/dev/null 2>&1 & done") == (0, "")
    assert len(rt.cgroups.pids(CTID)) >= 4
    assert not rt.stop(CTID, fast=True).running
    assert leftovers.of(rt, CTID, record.id_start) == ["registry entry", "id range", "volume"]

    # halt: busybox init powers off on its halt signal; then destroy leaves nothing.
    assert rt.start(CTID, OPTIONS).running
    assert not rt.stop(CTID, timeout=BOUND).running
    rt.destroy(CTID)
    assert leftovers.of(rt, CTID, record.id_start) == []


def test_usermode_helper_paths_stay_the_hosts(rt: Runtime) -> None:
    """SECURITY.md's modprobe and uevent_helper escapes (a path the kernel runs as host root), here
    where a stock kernel has modprobe (this repository's host kernel has neither; Debian's has no
    uevent_helper, CONFIG_UEVENT_HELPER=n, so that one is checked only where it exists)."""
    watched = [p for p in ("/proc/sys/kernel/modprobe", "/sys/kernel/uevent_helper") if os.path.exists(p)]
    assert "/proc/sys/kernel/modprobe" in watched
    before = {path: Path(path).read_text() for path in watched}
    rt.create(CreateSpec(ctid=CTID, template="busybox"))
    assert rt.start(CTID, OPTIONS).running
    for path in watched:
        code, _ = sh(rt, f"echo /tmp/evil > {path}")
        assert code != 0, path
    code, out = sh(rt, "mkdir -p /tmp/p && mount -t proc proc /tmp/p && echo /tmp/evil > /tmp/p/sys/kernel/modprobe")
    assert code != 0, out  # a fresh proc mount is no way around the read-only /proc/sys
    assert {path: Path(path).read_text() for path in watched} == before
    rt.stop(CTID, fast=True)
    rt.destroy(CTID)
