"""Bulk INSERT of prepared tuples in one statement: PostgreSQL unnests one array per column.

Django's `bulk_create` builds, validates and prepares a model instance per row;
for the usage ingest (tens of thousands of rows a minute, DESIGN.md) that costs
several times the database's own work. Rows here are tuples of values already
in the database's terms (JSON fields as JSON text), in `fields` order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import connection, models


def insert_rows(model: type[models.Model], fields: Sequence[str], rows: Sequence[Sequence[Any]], *,
                conflict: Sequence[str] = (), update: Sequence[str] = (), add: Sequence[str] = (),
                returning: str | None = None) -> list[Any]:
    """INSERT `rows` into `model`'s table. With `conflict` (the unique fields), a row that exists is
    left alone, or has the `update` fields set from the new row and the new row's `add` fields
    added to its own. Returns the `returning` field of the rows written (else nothing)."""
    if not rows:
        return []
    meta, quote = model._meta, connection.ops.quote_name
    columns = [meta.get_field(name) for name in fields]
    arrays = [list(values) for values in zip(*rows, strict=True)]
    for i, field in enumerate(columns):
        if isinstance(field, models.JSONField):
            arrays[i] = [None if v is None else json.dumps(v) for v in arrays[i]]
    table = quote(meta.db_table)
    # Strings travel as text: an explicit cast to varchar(n) would cut a long value silently, the
    # INSERT's own assignment refuses it ("value too long") as an ORM insert would.
    unnest = ", ".join(f"%b::{'text' if isinstance(field, models.CharField) else field.db_type(connection)}[]"
                       for field in columns)
    # Names come from the model's metadata, values only as parameters.
    sql = (f"INSERT INTO {table} ({', '.join(quote(f.column) for f in columns)}) "  # noqa: S608
           f"SELECT * FROM unnest({unnest})")
    if conflict:
        target = ", ".join(quote(meta.get_field(name).column) for name in conflict)
        sets = [f"{c} = EXCLUDED.{c}" for c in (quote(meta.get_field(n).column) for n in update)]
        sets += [f"{c} = {table}.{c} + EXCLUDED.{c}" for c in (quote(meta.get_field(n).column) for n in add)]
        sql += f" ON CONFLICT ({target}) " + (f"DO UPDATE SET {', '.join(sets)}" if sets else "DO NOTHING")
    if returning:
        sql += f" RETURNING {quote(meta.get_field(returning).column)}"
    # Server-side binding with binary parameters: psycopg sends each array as it is, instead of
    # quoting every element into the statement's text as Django's client-side cursor does.
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, arrays)
        return [row[0] for row in cursor.fetchall()] if returning else []
