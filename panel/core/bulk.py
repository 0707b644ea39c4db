"""Bulk INSERT of prepared tuples in one statement: PostgreSQL unnests one array per column.

Django's `bulk_create` builds, validates and prepares a model instance per row;
for the usage ingest (tens of thousands of rows a minute, DESIGN.md) that costs
several times the database's own work. Rows here are tuples of values already
in the database's terms (JSON fields as JSON-able data), in `fields` order.

Each column travels as one array literal in PostgreSQL's text form, made by
str.join: psycopg's binary array dumper costs a Python call per element,
which was a third of the panel worker's ingest CPU.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import connection, models


def insert_rows(model: type[models.Model], fields: Sequence[str], rows: Sequence[Sequence[Any]], *,
                conflict: Sequence[str] = (), update: Sequence[str] = (), add: Sequence[str] = (),
                returning: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """INSERT `rows` into `model`'s table. With `conflict` (the unique fields), a row that exists is
    left alone, or has the `update` fields set from the new row and the new row's `add` fields
    added to its own. Returns the `returning` fields of the rows written, as they are now."""
    if not rows:
        return []
    meta, quote = model._meta, connection.ops.quote_name
    columns = [meta.get_field(name) for name in fields]
    arrays = [array_literal(field, values) for field, values in zip(columns, zip(*rows, strict=True), strict=True)]
    table = quote(meta.db_table)
    # Strings travel as text: an explicit cast to varchar(n) would cut a long value silently, the
    # INSERT's own assignment refuses it ("value too long") as an ORM insert would.
    unnest = ", ".join(f"%t::{'text' if isinstance(field, models.CharField) else field.db_type(connection)}[]"
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
        sql += f" RETURNING {', '.join(quote(meta.get_field(name).column) for name in returning)}"
    # Server-side binding: each array is one parameter, instead of every element quoted into the
    # statement's text as Django's client-side cursor does.
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, arrays)
        return cursor.fetchall() if returning else []


def _quoted(texts: list[str]) -> str:
    """Strings as array elements, each in double quotes (where only backslash and double quote are
    escaped): joined and escaped as one string, unless a string holds the separator, NUL (which
    PostgreSQL refuses in text anyway)."""
    joined = "\x00".join(texts)
    if joined.count("\x00") == len(texts) - 1:
        return '"' + _escaped(joined).replace("\x00", '","') + '"'
    return ",".join(f'"{_escaped(text)}"' for text in texts)


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def array_literal(field: models.Field, values: Sequence[Any]) -> str:
    """`values` of `field`'s column as a PostgreSQL array literal ('{1,NULL,3}'); None is NULL."""
    if None not in values:
        return "{" + _elements(field, values) + "}"
    return "{" + ",".join("NULL" if v is None else _elements(field, [v]) for v in values) + "}"


def _elements(field: models.Field, values: Sequence[Any]) -> str:
    """Numbers as str() writes them (a bool in a number column is refused by PostgreSQL, as it
    should be), dates in ISO 8601 (no character to quote), strings and JSON (written here) quoted."""
    if isinstance(field, models.JSONField):
        return _quoted([json.dumps(v) for v in values])
    if isinstance(field, models.CharField | models.TextField):
        return _quoted(list(values))
    if isinstance(field, models.DateField):  # and DateTimeField; often one time for every row
        if values.count(values[0]) == len(values):
            return ",".join([values[0].isoformat()] * len(values))
        return ",".join([v.isoformat() for v in values])
    if isinstance(field, models.BooleanField):
        return ",".join(["t" if v else "f" for v in values])
    return ",".join(map(str, values))
