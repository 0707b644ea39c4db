"""vzctl value syntax and `vzctl set` arguments (pure)."""

from __future__ import annotations

import pytest

from kernel.errors import InvalidArgument
from kernel.ubc.limits import Limits, parse_set
from kernel.ubc.values import format_cpulist, parse_barrier_limit, parse_cpulist, parse_number, parse_percent

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("text", "unit", "expected"), [
    ("512M", "bytes", 512 << 20),
    ("1g", "bytes", 1 << 30),
    ("2P", "bytes", 2 << 50),
    ("4096", "bytes", 4096),
    ("100", "pages", 100 * 4096),
    ("256M", "pages", 256 << 20),
    ("1K", "count", 1024),
    ("200", "count", 200),
    ("unlimited", "bytes", None),
    ("9223372036854775807", "pages", None),
])
def test_parse_number(text: str, unit: str, expected: int | None) -> None:
    assert parse_number(text, unit=unit) == expected


@pytest.mark.parametrize("text", ["", "12X", "M", "-5", "1.5G", "1:2:3"])
def test_parse_refuses_garbage(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_barrier_limit(text)


def test_barrier_limit() -> None:
    assert parse_barrier_limit("256M:512M") == (256 << 20, 512 << 20)
    assert parse_barrier_limit("1000:unlimited", unit="count") == (1000, None)
    assert parse_barrier_limit("300", unit="count") == (300, 300)
    with pytest.raises(InvalidArgument):
        parse_barrier_limit("2G:1G")


def test_percent_and_cpulist() -> None:
    assert parse_percent("150") == 150
    assert parse_percent("25%") == 25
    assert parse_percent("unlimited") is None
    assert parse_percent("0") is None
    assert parse_cpulist("0-3,6") == [0, 1, 2, 3, 6]
    assert parse_cpulist("all") == []
    assert format_cpulist([6, 0, 1, 2, 3, 8, 9]) == "0-3,6,8-9"
    with pytest.raises(InvalidArgument):
        parse_cpulist("3-1")


def test_vzctl_set_arguments() -> None:
    argv = ["--ram", "512M", "--swap", "256M", "--numproc", "200", "--cpus", "2", "--cpulimit", "150",
            "--cpuunits", "1000", "--iolimit", "10M", "--iopslimit", "300", "--numfile", "1024:2048", "--save"]
    limits, save = parse_set(argv)
    assert save
    assert limits == Limits(ram=512 << 20, swap=256 << 20, numproc=200, cpus=2, cpulimit=150, cpuunits=1000,
                            iolimit=10 << 20, iopslimit=300, numfile=2048)
    again, save = parse_set(["--physpages", "unlimited", "--cpumask", "0-1"], limits)
    assert not save
    assert again.ram == 0 and again.cpumask == "0-1" and again.numproc == 200


@pytest.mark.parametrize("argv", [["--ram"], ["--bogus", "1"], ["--numfile", "30000"], ["--ioprio", "9"]])
def test_vzctl_set_refuses(argv: list[str]) -> None:
    with pytest.raises(InvalidArgument):
        parse_set(argv)


def test_quota_from_cpus_and_cpulimit() -> None:
    assert Limits().cpu_quota_percent() == 0
    assert Limits(cpus=2).cpu_quota_percent() == 200
    assert Limits(cpus=2, cpulimit=150).cpu_quota_percent() == 150
    assert Limits(cpus=1, cpulimit=150).cpu_quota_percent() == 100
    assert Limits(cpulimit=250).cpu_quota_percent() == 250


def test_from_protocol_keeps_beancounter_names() -> None:
    limits = Limits.from_protocol({"ram": 1 << 30, "diskspace": 10 << 30, "rate_in": 1000, "numproc": 50})
    assert limits == Limits(ram=1 << 30, numproc=50)


def test_a_plans_numfile_above_the_nodes_cap_gets_the_cap_and_a_note() -> None:
    """The seeded vswap plans ask for 65536 open files; a node capped lower fits them, saying so,
    instead of failing every create on that plan (an explicit `vzctl set` above the cap still fails)."""
    from kernel.ubc.limits import NUMFILE_HOST_CAP

    limits, notes = Limits.for_node({"ram": 256 << 20, "numfile": 65536, "diskspace": 1 << 30})
    assert (limits.ram, limits.numfile) == (256 << 20, NUMFILE_HOST_CAP)
    assert notes == [f"numfile 65536 is above this node's cap: {NUMFILE_HOST_CAP}"]
    assert Limits.for_node({"numfile": 1024}) == (Limits(numfile=1024), [])
    with pytest.raises(InvalidArgument):
        Limits(numfile=65536)
