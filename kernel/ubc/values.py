"""vzctl's value syntax for limits, as pure functions (no kernel access).

`512M`, `1G`, `2P` (binary suffixes K M G T P), `B:L` barrier:limit, and
`unlimited` (also OpenVZ's LONG_MAX 9223372036854775807). A bare number is
bytes for byte parameters and pages for OpenVZ's page-counted rows
(physpages, swappages, shmpages given with `--physpages` etc.).
"""

from __future__ import annotations

from kernel.errors import InvalidArgument

UNLIMITED_TEXT = ("unlimited", "9223372036854775807", "max", "-1")
LONG_MAX = 9223372036854775807
PAGE = 4096
_SUFFIX = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_number(text: str, *, unit: str = "bytes") -> int | None:
    """One value in bytes (unit "bytes"), pages→bytes (unit "pages") or a count; None = unlimited.

    A suffix always means bytes: `--physpages 256M` is 256 MiB whatever the unit; for a count,
    the suffix just multiplies (vzctl accepts `--numproc 1K`).
    """
    raw = text.strip().lower()
    if not raw:
        raise InvalidArgument("empty limit value")
    if raw in UNLIMITED_TEXT:
        return None
    number, suffix = raw, ""
    if raw[-1] in _SUFFIX and not raw[-1].isdigit():
        number, suffix = raw[:-1], raw[-1]
    if not number.isdigit():
        raise InvalidArgument(f"bad limit value {text!r}")
    value = int(number) * _SUFFIX[suffix]
    if unit == "pages" and not suffix:
        value *= PAGE
    if value >= LONG_MAX:
        return None
    return value


def parse_barrier_limit(text: str, *, unit: str = "bytes") -> tuple[int | None, int | None]:
    """`B:L` or a single value (barrier = limit); None = unlimited. The barrier may not exceed the limit."""
    parts = text.split(":")
    if len(parts) > 2:
        raise InvalidArgument(f"bad barrier:limit {text!r}")
    barrier = parse_number(parts[0], unit=unit)
    limit = parse_number(parts[-1], unit=unit)
    if barrier is not None and limit is not None and barrier > limit:
        raise InvalidArgument(f"barrier above limit in {text!r}")
    return barrier, limit


def parse_percent(text: str) -> int | None:
    """`150`, `150%` or `unlimited`: percent of one CPU; None = unlimited."""
    raw = text.strip().removesuffix("%")
    if raw.lower() in UNLIMITED_TEXT:
        return None
    if not raw.isdigit():
        raise InvalidArgument(f"bad percentage {text!r}")
    return int(raw) or None


def parse_cpulist(text: str) -> list[int]:
    """A kernel cpu list (`0-3,6`) → sorted CPU numbers; `all`/empty → []."""
    raw = text.strip()
    if raw in ("", "all"):
        return []
    cpus: set[int] = set()
    for part in raw.split(","):
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise InvalidArgument(f"bad cpu list {text!r}")
        first, last = int(lo), int(hi) if sep else int(lo)
        if last < first:
            raise InvalidArgument(f"bad cpu range {part!r}")
        cpus.update(range(first, last + 1))
    return sorted(cpus)


def format_cpulist(cpus: list[int]) -> str:
    """CPU numbers → the kernel's compact list (`0-3,6`)."""
    runs: list[list[int]] = []
    for cpu in sorted(set(cpus)):
        if runs and runs[-1][1] == cpu - 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
