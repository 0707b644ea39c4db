"""The node's beancounter FUSE server: one file per VPS with that VPS's table, renewed after its
window (kernel tier; the per-VPS binds and isolation inside VPSs are in test_inside.py)."""

from __future__ import annotations

import mmap
import os
import signal
import time
from collections.abc import Iterator

import pytest

from kernel import cgroups
from kernel.ubc.accounting import save_rows
from kernel.ubc.counters import Row
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


def _sleeper_in(driver: cgroups.CgroupDriver, ctid: int) -> int:
    """A process that only waits, put in VPS `ctid`'s cgroups: one more numproc."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        signal.pause()
        os._exit(0)
    try:
        driver.attach(ctid, pid)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    return pid


def _wait_numproc(path, expected: int, what: str) -> None:
    """Until the table at `path` counts `expected` processes (a later window's table)."""
    deadline = time.monotonic() + 20
    while _numproc(path.read_text()) != expected:
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


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
        sleeper = _sleeper_in(driver, 201)
        _wait_numproc(tmp_path / "201", before + 1, "the table was not renewed")
    finally:
        if sleeper:
            os.kill(sleeper, signal.SIGKILL)
            os.waitpid(sleeper, 0)
        server.stop()
    assert not os.path.ismount(tmp_path)


def test_a_lookup_keeps_no_table_the_first_read_makes_it(bare_vpss, tmp_path) -> None:
    """A start binds the VPS's file (a LOOKUP) before it applies the VPS's limits: the table the
    VPS reads first is made at that read, not at the lookup (long window: no renewal between)."""
    driver = bare_vpss
    server = BeancounterFS(str(tmp_path), cgroup_text(driver), window=60)
    server.start()
    sleeper = 0
    try:
        path = tmp_path / "201"
        size = path.stat().st_size  # the lookup
        sleeper = _sleeper_in(driver, 201)
        text = path.read_text()
        assert _numproc(text) == 1 and len(text.encode()) == size
    finally:
        if sleeper:
            os.kill(sleeper, signal.SIGKILL)
            os.waitpid(sleeper, 0)
        server.stop()


def _held(text: str, row: str) -> int | None:
    found = [line.split() for line in text.splitlines() if row in line.split()]
    return int(found[0][-5]) if found else None


def test_the_samplers_accounting_rows_are_in_the_table(bare_vpss, tmp_path) -> None:
    """The rows the usage sampler saved last (accounting.save_rows) join the cgroup rows, per VPS."""
    saved, mount = str(tmp_path / "run" / "ubc-accounting.json"), tmp_path / "mnt"
    mount.mkdir()
    server = BeancounterFS(str(mount), cgroup_text(bare_vpss, saved), window=0.3)
    server.start()
    try:
        assert _held((mount / "201").read_text(), "numfile") == 0  # not counted yet: the row, held 0
        save_rows(saved, {201: {"numfile": Row(7, 9, 20000, 20000, 0), "numpty": Row(2, 2, 64, 64, 0)}})
        deadline = time.monotonic() + 20
        while _held(text := (mount / "201").read_text(), "numfile") != 7:
            assert time.monotonic() < deadline, "the saved rows did not appear"
            time.sleep(0.1)
        assert _held(text, "numpty") == 2 and _held(text, "physpages") is not None
        assert _held((mount / "202").read_text(), "numfile") == 0  # 201's rows only in 201's file
        save_rows(saved, {201: {"numfile": Row(11, 11, 20000, 20000, 0)}})
        while _held((mount / "201").read_text(), "numfile") != 11:
            assert time.monotonic() < deadline, "the next save did not appear"
            time.sleep(0.1)
    finally:
        server.stop()


def test_a_vps_that_stopped_reading_stops_costing(bare_vpss, tmp_path) -> None:
    """A read starts a run of pushed texts (`pushes` windows, longer for a steady reader, never
    beyond MAX_PUSHES); then the kernel's copy is dropped and, unread, the VPS costs no more texts."""
    made: list[int] = []
    text_for = cgroup_text(bare_vpss)

    def counted(ctid: int) -> str:
        made.append(ctid)
        return text_for(ctid)

    server = BeancounterFS(str(tmp_path), counted, window=0.05, pushes=3)
    server.start()
    try:
        assert (tmp_path / "201").read_text().startswith("Version: 2.5")
        deadline = time.monotonic() + 20
        seen, quiet = -1, 0
        while quiet < 20:  # twenty windows without a new text
            assert time.monotonic() < deadline, "the pushes did not end"
            time.sleep(0.05)
            quiet = quiet + 1 if len(made) == seen else 0
            seen = len(made)
        assert set(made) == {201} and 1 + 3 <= len(made) <= 2 + 3  # the read (LOOKUP and READ), then 3 pushes
        assert (tmp_path / "201").read_text().startswith("Version: 2.5")  # read again: asked again
        assert len(made) > seen
    finally:
        server.stop()


def test_a_vps_flooding_the_server_does_not_hold_back_anothers_table(bare_vpss, tmp_path) -> None:
    """Four processes of VPS 201 read its file without pause and without the page cache (O_DIRECT:
    every read is a request to the server); VPS 202's table is still renewed."""
    driver = bare_vpss
    server = BeancounterFS(str(tmp_path), cgroup_text(driver), window=0.3)
    server.start()
    flooders: list[int] = []
    sleeper = 0
    try:
        before = _numproc((tmp_path / "202").read_text())
        for _ in range(4):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - child
                code = 3
                try:
                    driver.attach(201, 0)
                    fd = os.open(tmp_path / "201", os.O_RDONLY | os.O_DIRECT)
                    buffer = mmap.mmap(-1, 65536)  # page-aligned, as O_DIRECT may want
                    while os.preadv(fd, [buffer], 0) > 0:
                        pass
                finally:
                    os._exit(code)
            flooders.append(pid)
        sleeper = _sleeper_in(driver, 202)
        _wait_numproc(tmp_path / "202", before + 1, "202's table was not renewed during the flood")
        assert all(os.waitpid(pid, os.WNOHANG) == (0, 0) for pid in flooders)  # still reading
    finally:
        for pid in [*flooders, sleeper]:
            if pid:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        server.stop()
