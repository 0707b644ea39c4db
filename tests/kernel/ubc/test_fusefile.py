"""The node's beancounter FUSE server: one file per VPS with that VPS's table, renewed after its
window (kernel tier; the per-VPS binds and isolation inside VPSs are in test_inside.py)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from kernel import cgroups
from kernel.ubc.fusefile import BeancounterFS, cgroup_text

pytestmark = pytest.mark.kernel


@pytest.fixture
def bare_vpss() -> Iterator[cgroups.CgroupDriver]:
    """Two VPS cgroups (CTIDs 201, 202) with nothing in them, under a private prefix."""
    driver = cgroups.detect(f"ctpanel-ubcfuse-{os.getpid()}")
    for ctid in (201, 202):
        driver.ensure(ctid)
    yield driver
    for ctid in (201, 202):
        driver.kill(ctid)
        driver.remove(ctid)
    for mount in driver.hierarchies().values():
        os.rmdir(os.path.join(mount, driver.prefix))


def _numproc(text: str) -> int:
    return int(next(line.split() for line in text.splitlines() if "numproc" in line)[-5])


def test_one_file_per_vps_renewed_after_its_window(bare_vpss, tmp_path) -> None:
    driver = bare_vpss
    server = BeancounterFS(str(tmp_path), cgroup_text(driver), window=0.3)
    server.start()
    sleeper = 0
    try:
        for ctid in (201, 202):
            lines = (tmp_path / str(ctid)).read_text().splitlines()
            assert lines[0] == "Version: 2.5"
            assert lines[2].startswith(f"{ctid:>9}:  ")
            assert not any(line.lstrip().startswith(f"{303 - ctid}:") for line in lines)
            assert any(line.split()[:1] == ["physpages"] for line in lines)
        assert (tmp_path / "999").read_text().splitlines()[2:] == []  # no such VPS: the header alone
        assert not (tmp_path / "user_beancounters").exists()
        before = _numproc((tmp_path / "201").read_text())
        sleeper = os.fork()
        if sleeper == 0:  # pragma: no cover - child
            signal.pause()
            os._exit(0)
        driver.attach(201, sleeper)
        deadline = time.monotonic() + 20
        while _numproc((tmp_path / "201").read_text()) != before + 1:  # the next window's table
            assert time.monotonic() < deadline, "the table was not renewed"
            time.sleep(0.1)
    finally:
        if sleeper:
            os.kill(sleeper, signal.SIGKILL)
            os.waitpid(sleeper, 0)
        server.stop()
    assert not os.path.ismount(tmp_path)
