"""The dashboard: one page per role, drawing on every app (so it sits above the app layers).

Only real numbers: usage appears where a node has reported some.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Max, OuterRef, Subquery, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.core.audit.models import ObjectChange
from panel.core.choices import OperationStatus
from panel.core.formats import bytes_si
from panel.core.models import Operation
from panel.core.notify.models import Notice
from panel.core.permissions import CHANGE, VIEW, tenant_q
from panel.nodes.choices import NodeState
from panel.nodes.models import IPPool, Node
from panel.plans import budgets
from panel.plans.models import Budget, Plan
from panel.plans.views import budget_rows
from panel.usage import reports
from panel.usage.models import Beancounter, FailEvent, Sample, TrafficPeriod
from panel.vps.choices import VpsState
from panel.vps.models import VPS
from panel.vps.views import vps_queryset

CARD_POLL = 5  # seconds between refreshes of the VPS card
USAGE_POLL = 60  # seconds: the node samples once a minute
NEAR_LIMIT = 0.9  # a beancounter row this full is highlighted
UNLIMITED = 2**63 - 1  # vzubc's LONG_MAX: how nodes report "no limit" (kernel/ubc/counters.py)


def _beancounter_cells(row: Beancounter) -> list[str]:
    """held, maxheld, barrier, limit as text: byte rows with units (the num* rows are counts), "unlimited"."""
    def text(value: int) -> str:
        if value >= UNLIMITED:
            return "unlimited"
        return str(value) if row.resource.startswith("num") else bytes_si(value)
    return [text(v) for v in (row.held, row.maxheld, row.barrier, row.limit)]


def _current_traffic(on: datetime.date) -> dict[str, Subquery]:
    periods = TrafficPeriod.objects.filter(vps=OuterRef("pk"), start__lte=on, end__gt=on)
    return {f"traffic_{name}": Subquery(periods.values(name)[:1]) for name in ("rx_bytes", "tx_bytes", "quota")}


def vps_card_context(request: HttpRequest, limit: int = 10) -> dict[str, Any]:
    """The user's VPSs with live state, addresses, plan, and usage where the node has reported some."""
    latest = Sample.objects.filter(vps=OuterRef("pk")).order_by("-time")
    vpss = vps_queryset().restrict(request.user, VIEW).alive()
    shown = list(vpss.annotate(**_current_traffic(timezone.localdate()),
                               ram_used=Subquery(latest.values("ram_bytes")[:1]))[:limit])
    for vps in shown:
        vps.traffic = None if vps.traffic_rx_bytes is None else vps.traffic_rx_bytes + vps.traffic_tx_bytes
    has_usage = any(v.traffic is not None or v.ram_used is not None for v in shown)
    return {"vpss": shown, "vps_total": vpss.count(), "card_poll": CARD_POLL, "has_usage": has_usage}


@login_required
def vps_card(request: HttpRequest) -> HttpResponse:
    """The dashboard's VPS card; it polls this view to stay live."""
    return render(request, "vps/card.html", vps_card_context(request))


@login_required
def vps_usage(request: HttpRequest, ctid: int) -> HttpResponse:
    """A VPS's usage part, loaded into its page (the vps app sits below usage, so it does not import it)."""
    vps = VPS.objects.restrict(request.user, VIEW).filter(ctid=ctid).first()
    if vps is None:
        raise Http404("No such VPS.")
    today = timezone.localdate()
    rows = list(Beancounter.objects.filter(vps=vps).order_by("resource"))
    for row in rows:
        limited = 0 < row.limit < UNLIMITED
        row.level = "bad" if row.failcnt else "warn" if limited and row.held >= NEAR_LIMIT * row.limit else ""
        row.cells = _beancounter_cells(row)
    context = {
        "vps": vps, "sample": Sample.objects.filter(vps=vps).order_by("-time").first(),
        "traffic": TrafficPeriod.objects.filter(vps=vps, start__lte=today, end__gt=today).first(),
        "beancounters": rows, "usage_poll": USAGE_POLL,
        "fail_events": [(e, reports.fail_words(e)) for e in FailEvent.objects.filter(vps=vps)[:10]],
    }
    return render(request, "usage/vps_usage.html", context)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    context = {
        "title": "Dashboard",
        "notices": Notice.objects.restrict(user, CHANGE).filter(read_at__isnull=True)[:5],
        "operations": Operation.objects.filter(tenant_q(user, "user")).select_related("user")[:8],
        "plans": Plan.objects.restrict(user, VIEW).count(),
        **vps_card_context(request),
    }
    if user.is_admin:
        nodes = Node.objects.all()
        context.update(
            nodes_total=nodes.count(), nodes_up=nodes.filter(state=NodeState.UP).count(),
            nodes_down=nodes.filter(state=NodeState.DOWN).count(),
            resellers=User.objects.filter(role=Role.RESELLER).count(),
            customers=User.objects.filter(role=Role.CUSTOMER).count(),
            pools=IPPool.objects.count(),
            running=Operation.objects.exclude(status__in=OperationStatus.terminal()).count(),
            vps_running=VPS.objects.filter(state=VpsState.RUNNING).count(),
            changes=ObjectChange.objects.select_related("content_type")[:8],
        )
    else:
        budget = Budget.objects.filter(grantee=user).first()
        context.update(budget=budget, rows=budget_rows(budget, budgets.allocated(user), budgets.used(user)),
                       grantee=user)
        if user.is_reseller:
            context.update(customers=user.customers.count(),
                           suspended=user.customers.filter(is_active=False).count(),
                           changes=ObjectChange.objects.restrict(user, VIEW).select_related("content_type")[:8])
    if not user.is_customer:
        context["limit_hits"] = limit_hits(user)
    return render(request, "dashboard.html", context)


def limit_hits(user: Any, hours: int = 24, limit: int = 8) -> list[dict[str, Any]]:
    """VPSs whose beancounters refused requests lately (most refusals first): where to look for trouble."""
    since = timezone.now() - datetime.timedelta(hours=hours)
    rows = (FailEvent.objects.restrict(user, VIEW).filter(time__gte=since)
            .values("vps__ctid", "vps__hostname", "resource").annotate(count=Sum("count"), last=Max("time"))
            .order_by("-count", "vps__ctid")[:limit])
    return list(rows)
