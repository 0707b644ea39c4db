"""Units in the UI: bytes and rates shown in SI units (GB = 10^9 bytes), and parsed back.

Input accepts SI units (kB, MB, GB, TB) and binary ones (KiB, MiB, GiB,
TiB); a bare number is bytes. Rates are bits per second (kbit/s, Mbit/s,
Gbit/s). `bytes_input` writes a value so that parsing it gives the same
number of bytes back.
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal, InvalidOperation

BYTE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
RATE_UNITS = {"": 1, "bit/s": 1, "bps": 1, "kbit/s": 10**3, "mbit/s": 10**6, "gbit/s": 10**9,
              "kbps": 10**3, "mbps": 10**6, "gbps": 10**9, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9}
_NUMBER = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z/]*)\s*$")


def _scaled(value: int, units: list[tuple[str, int]]) -> str:
    for name, size in units:
        if value >= size:
            number = f"{value / size:.2f}".rstrip("0").rstrip(".")
            return f"{number} {name}"
    return f"{value} {units[-1][0]}"


def bytes_si(value: int) -> str:
    """1500000000 -> "1.5 GB"."""
    return _scaled(int(value), [("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3), ("B", 1)])


def bits_per_second(value: int) -> str:
    return _scaled(int(value), [("Gbit/s", 10**9), ("Mbit/s", 10**6), ("kbit/s", 10**3), ("bit/s", 1)])


def parse_units(text: str, units: dict[str, int]) -> int:
    """"1.5 GB" -> 1500000000; ValueError for anything else."""
    match = _NUMBER.match(str(text))
    if not match or match.group(2).lower() not in units:
        raise ValueError(text)
    try:
        value = Decimal(match.group(1)) * units[match.group(2).lower()]
    except InvalidOperation as exc:
        raise ValueError(text) from exc
    if value != value.to_integral_value():
        raise ValueError(text)
    return int(value)


def exact_input(value: int, units: list[tuple[str, int]]) -> str:
    """The largest unit that divides `value` exactly, so the text parses back to the same number."""
    for name, size in units:
        if value and value % size == 0:
            return f"{value // size} {name}"
    return str(value)


def bytes_input(value: int) -> str:
    return exact_input(int(value), [("TiB", 2**40), ("TB", 10**12), ("GiB", 2**30), ("GB", 10**9),
                                    ("MiB", 2**20), ("MB", 10**6), ("KiB", 2**10), ("kB", 10**3)])


def rate_input(value: int) -> str:
    return exact_input(int(value), [("Gbit/s", 10**9), ("Mbit/s", 10**6), ("kbit/s", 10**3)])


def age(then: datetime.datetime | None, now: datetime.datetime) -> str:
    """A short age: "4 s", "3 min", "2 h", "5 d"; "never" for None."""
    if then is None:
        return "never"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
