"""The node's beancounter FUSE file answers each reader with its own VPS's table (kernel tier)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from kernel import cgroups
from kernel.ubc import FastReader
from kernel.ubc.fusefile import FILE_NAME, BeancounterFS, node_text

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


def _read_as(driver: cgroups.CgroupDriver, ctid: int | None, path: str) -> str:
    """Read `path` from a child process placed in `ctid`'s cgroups (None: left on the host)."""
    r, w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        os.close(go_w)
        os.read(go_r, 1)
        with open(path, "rb") as fh:
            os.write(w, fh.read())
        os._exit(0)
    os.close(w)
    os.close(go_r)
    try:
        if ctid is not None:
            driver.attach(ctid, pid)
        os.write(go_w, b"g")
        chunks = []
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
    finally:
        os.close(r)
        os.close(go_w)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return b"".join(chunks).decode()


def test_each_reader_sees_its_own_vps(bare_vpss, tmp_path) -> None:
    driver = bare_vpss
    reader = FastReader(driver)
    server = BeancounterFS(str(tmp_path), node_text(driver.prefix, lambda c: reader.read_all([c])[c].rows))
    server.start()
    try:
        path = str(tmp_path / FILE_NAME)
        assert os.listdir(tmp_path) == [FILE_NAME]
        for ctid in (201, 202):
            lines = _read_as(driver, ctid, path).splitlines()
            assert lines[0] == "Version: 2.5"
            assert lines[2].startswith(f"{ctid:>9}:  ")
            assert all(not line.lstrip().startswith(f"{other}:") for other in (201, 202) if other != ctid
                       for line in lines)
            assert any(line.split()[:1] == ["physpages"] for line in lines)
        assert _read_as(driver, None, path).splitlines()[2:] == []
    finally:
        server.stop()
    assert not os.path.ismount(tmp_path)
