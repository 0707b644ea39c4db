"""`vzubc [-v|-q] [CTID...]`: OpenVZ's beancounter view of the node's running VPSs (docs/cli.md).

Rows come from the fast tier (cgroup files) and the accounting tier (the VPS's
processes), counters since each VPS's start as in OpenVZ; the layout is
`kernel.ubc.views.vzubc`. Like OpenVZ's vzubc, rows without a barrier are left out
unless `-v`; `-q` keeps the rows with failures or near their barrier.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from worker.cli import codes

if TYPE_CHECKING:
    from kernel.ubc import Row

Q_HELD = 0.5  # OpenVZ vzubc's quiet thresholds: held / barrier, maxheld / barrier
Q_MAXHELD = 0.8


def important(row: Row) -> bool:
    """OpenVZ vzubc's `-q` test: failures, or held/maxheld near the barrier."""
    barrier = row.barrier or row.limit
    return row.failcnt > 0 or row.held > barrier * Q_HELD or row.maxheld > barrier * Q_MAXHELD


def shown(rows: dict[str, Row], *, verbose: bool, quiet: bool) -> dict[str, Row]:
    from kernel.ubc import UNLIMITED

    if verbose:
        return rows
    return {name: row for name, row in rows.items()
            if row.barrier < UNLIMITED and (not quiet or important(row))}


def main(argv: list[str] | None = None) -> int:
    import argparse

    from kernel.runtime import Runtime
    from kernel.ubc import vzubc
    from worker.cli.beancounters import Tables
    from worker.cli.config import CliConfig

    parser = argparse.ArgumentParser(prog="vzubc", description="Show the beancounters of this node's running VPSs.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("-v", "--verbose", action="store_true", help="also rows without a limit")
    mode.add_argument("-q", "--quiet", action="store_true", help="only rows with failures or near their barrier")
    parser.add_argument("ctids", nargs="*", type=int, metavar="CTID")
    try:
        ns = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return codes.OK if exc.code == 0 else codes.BAD_SYNTAX
    rt = Runtime(CliConfig.from_env().kernel())
    tables = Tables(rt)
    out: dict[int, dict[str, Row]] = {}
    missing = []
    for ctid in ns.ctids or rt.cgroups.ctids():
        rows = tables.table(ctid)
        if rows is None:
            missing.append(ctid)
            continue
        rows = shown(rows, verbose=ns.verbose, quiet=ns.quiet)
        if rows:
            out[ctid] = rows
    if out:
        sys.stdout.write(vzubc(out))
    if ns.ctids and missing:
        for ctid in missing:
            print(f"Container {ctid} is not running", file=sys.stderr)
        return 1
    return codes.OK


if __name__ == "__main__":
    sys.exit(main())
