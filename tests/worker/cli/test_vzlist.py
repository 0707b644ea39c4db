"""vzlist's selections and output formats on real VPSs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from kernel.runtime import Runtime
from tests.worker.cli.conftest import _next_ctid

pytestmark = pytest.mark.kernel


@pytest.fixture
def two(run, ctid: int, cli_runtime: Runtime) -> Iterator[tuple[int, int]]:
    """`ctid` running (hostname up.example.com), a second one stopped."""
    from tests.kernel import leftovers

    other = next(_next_ctid)
    try:
        for number, host in ((ctid, "up.example.com"), (other, "down.example.com")):
            code, _, err = run("vzctl", "create", str(number), "--ostemplate", "busybox", "--hostname", host)
            assert code == 0, err
        assert run("vzctl", "start", str(ctid))[0] == 0
        yield ctid, other
    finally:
        leftovers.force_remove(cli_runtime, other)
        assert leftovers.of(cli_runtime, other) == []


def test_selections(run: Callable[..., tuple[int, str, str]], two: tuple[int, int]) -> None:
    up, down = two
    assert run("vzlist", "-1")[1].split() == [str(up)]
    assert run("vzlist", "-1", "-a")[1].split() == [str(up), str(down)]
    assert run("vzlist", "-1", "-S")[1].split() == [str(down)]
    assert run("vzlist", "-1", str(down))[1].split() == [str(down)]


def test_default_columns_and_fields(run: Callable[..., tuple[int, str, str]], two: tuple[int, int]) -> None:
    up, down = two
    lines = run("vzlist", "-a")[1].splitlines()
    assert lines[0].split() == ["CTID", "NPROC", "STATUS", "IP_ADDR", "HOSTNAME"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows[str(up)][2:] == ["running", "-", "up.example.com"]
    assert int(rows[str(up)][1]) >= 1  # busybox init at least
    assert rows[str(down)][1:] == ["0", "stopped", "-", "down.example.com"]

    code, out, _ = run("vzlist", "-a", "-H", "-o", "hostname,ctid,ostemplate,onboot")
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [
        ["up.example.com", str(up), "busybox", "no"],
        ["down.example.com", str(down), "busybox", "no"],
    ]
    assert run("vzlist", "-o", "ctid,nonsense")[0] == 20


def test_json(run: Callable[..., tuple[int, str, str]], two: tuple[int, int]) -> None:
    up, down = two
    data = json.loads(run("vzlist", "-a", "-j", "-o", "ctid,status,hostname,ip,onboot")[1])
    assert data == [
        {"ctid": up, "status": "running", "hostname": "up.example.com", "ip": None, "onboot": False},
        {"ctid": down, "status": "stopped", "hostname": "down.example.com", "ip": None, "onboot": False},
    ]
    assert json.loads(run("vzlist", "-j", "-S", "-o", "ctid")[1]) == [{"ctid": down}]
