"""Usage in the browser: a VPS's graph data (JSON for the VPS page's charts) and the usage report.

The report is for admins (per customer or per reseller) and resellers (per
customer): traffic, CPU, RAM and limit hits over a window, as a table or
CSV, with the VPSs whose beancounters keep refusing requests on top.
"""

from __future__ import annotations

import datetime
from types import SimpleNamespace
from typing import Any

from django import forms
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

from panel.accounts.choices import Role
from panel.core.permissions import VIEW
from panel.core.tables import BytesColumn, Column, Table
from panel.core.views import PanelView
from panel.usage import graphs, reports
from panel.vps.models import VPS


class GraphView(PanelView):
    """`?range=hour|day|week|month|year` of one VPS the user may view (404 otherwise)."""

    def get(self, request: HttpRequest, ctid: int) -> JsonResponse:
        vps = VPS.objects.restrict(request.user, VIEW).filter(ctid=ctid).first()
        name = request.GET.get("range", "hour")
        if vps is None or name not in graphs.RANGES:
            raise Http404("No such VPS or range.")
        response = JsonResponse(graphs.graph(vps, name))
        response["Cache-Control"] = "private, no-store"
        return response


class ReportForm(forms.Form):
    days = forms.TypedChoiceField(label="Period", coerce=int, initial=30, required=False,
                                  choices=[(1, "Last 24 hours"), (7, "Last 7 days"), (30, "Last 30 days"),
                                           (90, "Last 90 days")])
    group = forms.ChoiceField(label="Per", required=False, initial="customer",
                              choices=[("customer", "Customer"), ("reseller", "Reseller")])


def _percent(value: Any) -> str:
    return "" if value is None else f"{value:.1f} %"


class ReportTable(Table):
    """Rows of reports.usage_report in the order it gives (by user), not sortable."""

    columns = [
        Column("name", "Customer", orderable=False),
        Column("vpss", "VPSs", orderable=False),
        BytesColumn("rx_bytes", "Received", orderable=False),
        BytesColumn("tx_bytes", "Sent", orderable=False),
        Column("cpu", "CPU (average, % of one CPU)", orderable=False),
        BytesColumn("ram_avg", "RAM (average)", orderable=False),
        BytesColumn("ram_max", "RAM (peak)", orderable=False),
        Column("fail_events", "Requests refused at limits", orderable=False),
    ]
    empty_text = "No usage in this period yet (the nodes report every minute; rollups follow every 5 minutes)."


class UsageReportView(PanelView):
    roles = (Role.ADMIN, Role.RESELLER)

    def get(self, request: HttpRequest) -> HttpResponse:
        form = ReportForm(request.GET or None)
        if not request.user.is_admin:
            form.fields.pop("group")
        data = form.cleaned_data if form.is_valid() else {}
        days = data.get("days") or 30
        group = data.get("group") or "customer"
        until = timezone.now()
        since = until - datetime.timedelta(days=days)
        rows = [SimpleNamespace(**row, name=row["username"] or "(the admin's own customers)",
                                cpu=_percent(row["cpu_percent_avg"]))
                for row in reports.usage_report(request.user, since, until, group)]
        table = ReportTable(rows, request, paginate=False)
        table.columns[0].label = "Reseller" if group == "reseller" else "Customer"
        if request.GET.get("export") == "csv":
            response = HttpResponse(table.as_csv(), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="usage-{group}-{days}d.csv"'
            return response
        context = {"title": "Usage", "form": form, "table": table, "since": since, "until": until,
                   "alerts": reports.rising_failcnt(request.user, until)}
        return render(request, "usage/report.html", context)
