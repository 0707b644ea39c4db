"""Tables for list views: columns, sorting by `?sort=`, pagination by `?page=`, CSV export.

A table is a class with a list of `Column`s (NetBox's tables without
django-tables2). The view hands it an already restricted and filtered
queryset; the table only orders, pages and renders it.

    class PlanTable(Table):
        columns = [Column("name", link=True), BytesColumn("ram"), Column("active")]
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.core.paginator import Paginator
from django.db import models
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from panel.core.formats import bits_per_second, bytes_si

EMPTY = "—"


class Column:
    """One column: `accessor` is a field path ("owner__username"); a choices field shows its label.

    `link`: True links to the record's get_absolute_url(), a callable(record)
    returns a URL. `template`: a template rendered with `record` and `value`.
    """

    def __init__(self, accessor: str, label: str | None = None, *, orderable: bool = True,
                 order_by: str | None = None, link: bool | Callable[[Any], str | None] = False,
                 template: str | None = None, empty: str = EMPTY, nowrap: bool = False) -> None:
        self.accessor = accessor
        self.nowrap = nowrap
        self.empty = empty
        self.context: dict[str, Any] = {}  # set by the table: request and csrf_token for cell templates
        self.label = label
        self.orderable = orderable
        self.order_by = order_by or accessor
        self.link = link
        self.template = template

    @property
    def name(self) -> str:
        return self.accessor

    def bind(self, model: type[models.Model] | None) -> None:
        """Take the label from the model field's verbose name when none was given."""
        if self.label is None:
            self.label = self.accessor.rsplit("__", 1)[-1].replace("_", " ")
            if model is not None:
                try:
                    self.label = str(model._meta.get_field(self.accessor.split("__")[0]).verbose_name)
                except FieldDoesNotExist:
                    self.orderable = self.orderable and self.order_by != self.accessor
            self.label = self.label[:1].upper() + self.label[1:]
        if model is not None and "__" not in self.accessor:
            with contextlib.suppress(FieldDoesNotExist):
                self.nowrap = self.nowrap or isinstance(model._meta.get_field(self.accessor), models.DateTimeField)

    def value(self, record: Any) -> Any:
        obj = record
        parts = self.accessor.split("__")
        for part in parts[:-1]:
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        last = parts[-1]
        display = getattr(obj, f"get_{last}_display", None)
        if callable(display):
            return display()
        value = getattr(obj, last, None)
        return value() if callable(value) and not isinstance(value, models.Manager) else value

    def text(self, record: Any) -> str:
        """The value as plain text (CSV)."""
        value = self.value(record)
        if value is None or value == "":
            return ""
        if isinstance(value, datetime.datetime):
            return value.isoformat()
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)

    def display(self, value: Any) -> str:
        if value is None or value == "":
            return self.empty
        if isinstance(value, datetime.datetime):
            return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
        if isinstance(value, bool):
            return "Yes" if value else "No"
        return str(value)

    def render(self, record: Any) -> SafeString:
        value = self.value(record)
        if self.template:
            context = {"record": record, "value": value, **self.context}
            return mark_safe(render_to_string(self.template, context))  # noqa: S308
        url = None
        if self.link is True:
            url = record.get_absolute_url() if hasattr(record, "get_absolute_url") else None
        elif callable(self.link):
            url = self.link(record)
        shown = self.display(value)
        return format_html('<a href="{}">{}</a>', url, shown) if url else format_html("{}", shown)


class BytesColumn(Column):
    """Bytes in SI units (GB = 10^9 bytes, as everywhere in the UI); 0 reads "unlimited" when asked."""

    def __init__(self, accessor: str, label: str | None = None, *, zero: str = "0", **kwargs: Any) -> None:
        super().__init__(accessor, label, **kwargs)
        self.zero = zero

    def display(self, value: Any) -> str:
        if value is None:
            return self.empty
        return self.zero if value == 0 else bytes_si(value)


class RateColumn(BytesColumn):
    def display(self, value: Any) -> str:
        if value is None:
            return self.empty
        return self.zero if value == 0 else bits_per_second(value)


class Table:
    columns: list[Column] = []
    default_order: str = ""
    per_page: int = 25
    empty_text: str = "Nothing here yet."

    def __init__(self, data: Iterable[Any], request: HttpRequest, *, paginate: bool = True) -> None:
        self.request = request
        model = getattr(data, "model", None)
        self.columns = [_copy(c) for c in type(self).columns]
        cell_context = {"request": request, "csrf_token": get_token(request)}
        for column in self.columns:
            column.bind(model)
            column.context = cell_context
        self.sort = request.GET.get("sort", "") or self.default_order
        self.data = self._ordered(data)
        self.page = None
        if paginate:
            per_page = _int(request.GET.get("per_page"), self.per_page, 1, 500)
            self.page = Paginator(self.data, per_page).get_page(request.GET.get("page"))

    def _ordered(self, data: Iterable[Any]) -> Iterable[Any]:
        name = self.sort.lstrip("-")
        column = next((c for c in self.columns if c.name == name and c.orderable), None)
        if column is None or not isinstance(data, models.QuerySet):
            self.sort = "" if column is None else self.sort
            return data
        field = column.order_by
        return data.order_by(f"-{field}" if self.sort.startswith("-") else field, "-pk")

    @property
    def records(self) -> Iterable[Any]:
        return self.page.object_list if self.page is not None else self.data

    def rows(self) -> list[list[tuple[str, SafeString]]]:
        """Per record, (CSS class, HTML) of each cell."""
        return [[("nowrap" if c.nowrap else "", c.render(record)) for c in self.columns] for record in self.records]

    def headers(self) -> list[dict[str, Any]]:
        headers = []
        for column in self.columns:
            state = ""
            if self.sort.lstrip("-") == column.name:
                state = "descending" if self.sort.startswith("-") else "ascending"
            target = f"-{column.name}" if state == "ascending" else column.name
            headers.append({"label": column.label, "orderable": column.orderable, "aria_sort": state,
                            "url": self.url(sort=target, page=None)})
        return headers

    def url(self, **changes: Any) -> str:
        """This page's query string with `changes` applied (None removes a parameter)."""
        params = self.request.GET.copy()
        for key, value in changes.items():
            params.pop(key, None)
            if value is not None:
                params[key] = value
        query = params.urlencode()
        return f"?{query}" if query else "?"

    def page_links(self) -> dict[str, str | None]:
        page = self.page
        if page is None:
            return {}
        return {"previous": self.url(page=page.previous_page_number()) if page.has_previous() else None,
                "next": self.url(page=page.next_page_number()) if page.has_next() else None}

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([c.label for c in self.columns])
        for record in self.data.iterator() if isinstance(self.data, models.QuerySet) else self.data:
            writer.writerow([_csv_safe(c.text(record)) for c in self.columns])
        return out.getvalue()

    def render(self) -> SafeString:
        return mark_safe(render_to_string("core/table.html", {"table": self}, request=self.request))  # noqa: S308


def _copy(column: Column) -> Column:
    clone = object.__new__(type(column))
    clone.__dict__.update(column.__dict__)
    return clone


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(value))) if value else default
    except ValueError:
        return default


def _csv_safe(text: str) -> str:
    """Neutralise spreadsheet formulas (CSV injection): a leading = + - @ becomes text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _operation_url(operation: Any) -> str:
    return reverse("core:operation", args=[operation.pk])


class OperationTable(Table):
    columns = [
        Column("created", "Started", link=_operation_url),
        Column("action"),
        Column("target_id", "Target", template="core/cells/target.html"),
        Column("node_name", "Node"),
        Column("user__username", "By"),
        Column("status", template="core/cells/status.html"),
        Column("percent", "Progress", template="core/cells/progress.html"),
        Column("duration_ms", "Took", template="core/cells/duration.html"),
    ]
    default_order = "-created"
    empty_text = "No operations yet."
