"""Text views of beancounter tables, as pure functions: OpenVZ's /proc/user_beancounters,
`vzubc` and `vzlist -o` columns. Input rows are in the API's units (bytes and counts);
rows OpenVZ counts in pages are printed in 4 KiB pages here and only here."""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence

from kernel.ubc.counters import UNLIMITED, Row
from kernel.ubc.values import PAGE

#: OpenVZ's row order; rows a node does not measure are left out.
ORDER = (
    "kmemsize", "lockedpages", "privvmpages", "shmpages", "numproc", "physpages", "vmguarpages",
    "oomguarpages", "numtcpsock", "numflock", "numpty", "numsiginfo", "tcpsndbuf", "tcprcvbuf",
    "othersockbuf", "dgramrcvbuf", "numothersock", "dcachesize", "numfile", "numiptent", "swappages",
)
PAGED = frozenset({"lockedpages", "privvmpages", "shmpages", "physpages", "vmguarpages", "oomguarpages", "swappages"})
COLUMNS = ("held", "maxheld", "barrier", "limit", "failcnt")
Table = Mapping[str, Row]


def _ordered(names: Collection[str]) -> list[str]:
    known = [name for name in ORDER if name in names]
    return known + sorted(set(names) - set(ORDER))


def openvz_values(name: str, row: Row) -> tuple[int, int, int, int, int]:
    """A row as OpenVZ prints it: pages for the page rows, unlimited as LONG_MAX."""

    def conv(value: int) -> int:
        if value >= UNLIMITED:
            return UNLIMITED
        return -(-value // PAGE) if name in PAGED else value

    return conv(row.held), conv(row.maxheld), conv(row.barrier), conv(row.limit), row.failcnt


_HEADER = "Version: 2.5\n" + f"{'uid':>10}  {'resource':<12}" + "".join(f" {c:>20}" for c in COLUMNS) + "\n"


@functools.lru_cache(maxsize=4096)
def _layout(uid: int, keys: tuple[str, ...]) -> tuple[str, tuple[tuple[str, bool], ...]]:
    """One uid's rows (`keys`: its table's, in any order) as a single %-format, and the rows in
    OpenVZ's order with whether each is printed in pages: the in-VPS file server makes this text
    per VPS per second."""
    names = _ordered(keys)
    lines = [(f"{uid:>9}:" if i == 0 else " " * 10) + f"  {name.replace('%', '%%'):<12}" + " %20d" * 5 + "\n"
             for i, name in enumerate(names)]
    return "".join(lines), tuple((name, name in PAGED) for name in names)


def user_beancounters(tables: Mapping[int, Table]) -> str:
    """OpenVZ's /proc/user_beancounters (format version 2.5) for the given uids (CTIDs)."""
    out = [_HEADER]
    for uid in sorted(tables):
        table = tables[uid]
        layout, rows = _layout(uid, tuple(table))
        values: list[int] = []
        for name, in_pages in rows:
            held, maxheld, barrier, limit, failcnt = table[name]
            if in_pages:
                values += (UNLIMITED if held >= UNLIMITED else -(-held // PAGE),
                           UNLIMITED if maxheld >= UNLIMITED else -(-maxheld // PAGE),
                           UNLIMITED if barrier >= UNLIMITED else -(-barrier // PAGE),
                           UNLIMITED if limit >= UNLIMITED else -(-limit // PAGE), failcnt)
            else:
                values += (held if held < UNLIMITED else UNLIMITED, maxheld if maxheld < UNLIMITED else UNLIMITED,
                           barrier if barrier < UNLIMITED else UNLIMITED, limit if limit < UNLIMITED else UNLIMITED,
                           failcnt)
        out.append(layout % tuple(values))
    return "".join(out)


def _human(value: int, name: str) -> str:
    if value >= UNLIMITED:
        return "-"
    if name in PAGED or name in ("kmemsize", "tcpsndbuf", "tcprcvbuf", "othersockbuf", "dgramrcvbuf", "dcachesize"):
        for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
            if value >= size:
                return f"{value / size:.1f}{unit}" if value < 10 * size else f"{value // size}{unit}"
        return str(value)
    return str(value)


def _pct(value: int, of: int) -> str:
    return "-" if of >= UNLIMITED or of <= 0 else f"{100 * value // of}%"


def vzubc(tables: Mapping[int, Table]) -> str:
    """vzubc's host view: per CT, held and maxheld with their share of barrier and limit."""
    out: list[str] = []
    for ctid in sorted(tables):
        out.append("-" * 87)
        out.append(f"CT {ctid:<10}| {'HELD':>7} {'Bar%':>5} {'Lim%':>5}| {'MAXH':>7} {'Bar%':>5} {'Lim%':>5}"
                   f"| {'BAR':>7} | {'LIM':>7} | {'FAIL':>6}")
        out.append(f"{'-' * 13}+{'-' * 21}+{'-' * 21}+{'-' * 9}+{'-' * 9}+{'-' * 7}")
        for name in _ordered(tables[ctid]):
            r = tables[ctid][name]
            out.append(
                f"{name:>13}| {_human(r.held, name):>7} {_pct(r.held, r.barrier):>5} {_pct(r.held, r.limit):>5}"
                f"| {_human(r.maxheld, name):>7} {_pct(r.maxheld, r.barrier):>5} {_pct(r.maxheld, r.limit):>5}"
                f"| {_human(r.barrier, name):>7} | {_human(r.limit, name):>7} | {r.failcnt or '-':>6}"
            )
    return "\n".join(out) + "\n"


_SUFFIXES = {"": 0, "m": 1, "b": 2, "l": 3, "f": 4}


def vzlist(tables: Mapping[int, Table], fields: Sequence[str]) -> str:
    """`vzlist -o ctid,physpages,physpages.m,...`: `.m/.b/.l/.f` are maxheld/barrier/limit/failcnt,
    no suffix is held; values as /proc/user_beancounters prints them; '-' where a row is not measured."""
    parsed: list[tuple[str, str, int]] = []
    for spec in fields:
        name, _, suffix = spec.partition(".")
        if suffix not in _SUFFIXES or (name != "ctid" and name not in ORDER):
            raise ValueError(f"unknown field {spec!r}")
        parsed.append((spec, name, _SUFFIXES[suffix]))
    rows = [[spec.upper() for spec, _, _ in parsed]]
    for ctid in sorted(tables):
        line = []
        for _, name, index in parsed:
            if name == "ctid":
                line.append(str(ctid))
            elif name in tables[ctid]:
                line.append(str(openvz_values(name, tables[ctid][name])[index]))
            else:
                line.append("-")
        rows.append(line)
    widths = [max(len(r[i]) for r in rows) for i in range(len(parsed))]
    return "\n".join(" ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows) + "\n"
