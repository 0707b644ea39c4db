"""PostgreSQL lock helpers for race tests: hold a lock, let the racers in, release once all of them wait."""

from __future__ import annotations

from django.db import connection


def backend_pid() -> int:
    """This thread's or process's own database backend (its connection is opened if need be)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def waiting(pids: list[int]) -> int:
    """How many of these backends wait for a lock (pg_locks is live; pg_stat_activity would be a snapshot)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted AND pid = ANY(%s)", [pids])
        return cursor.fetchone()[0]
