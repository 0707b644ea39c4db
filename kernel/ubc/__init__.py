"""User beancounters: per-VPS limits, counters and failcnt on cgroup v1 and v2 (docs/beancounters.md)."""

from __future__ import annotations

from kernel.ubc.accounting import account
from kernel.ubc.apply import Applied, apply, backing_device, limits_hook
from kernel.ubc.counters import UNLIMITED, FastReader, Ledger, Row, Sample
from kernel.ubc.limits import LIVE, RESTART, Limits, parse_set
from kernel.ubc.views import user_beancounters, vzlist, vzubc

__all__ = [
    "LIVE", "RESTART", "UNLIMITED", "Applied", "FastReader", "Ledger", "Limits", "Row", "Sample",
    "account", "apply", "backing_device", "limits_hook", "parse_set", "user_beancounters", "vzlist", "vzubc",
]
