"""The dashboard: one page per role, drawing on every app (so it sits above the app layers).

Only real numbers: what is not collected yet (usage) is not shown.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.core.audit.models import ObjectChange
from panel.core.choices import OperationStatus
from panel.core.models import Operation
from panel.core.notify.models import Notice
from panel.core.permissions import CHANGE, VIEW, tenant_q
from panel.nodes.choices import NodeState
from panel.nodes.models import IPPool, Node
from panel.plans import budgets
from panel.plans.models import Budget, Plan
from panel.plans.views import budget_rows
from panel.vps.choices import VpsState
from panel.vps.models import VPS
from panel.vps.views import card_context


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    context = {
        "title": "Dashboard",
        "notices": Notice.objects.restrict(user, CHANGE).filter(read_at__isnull=True)[:5],
        "operations": Operation.objects.filter(tenant_q(user, "user")).select_related("user")[:8],
        "plans": Plan.objects.restrict(user, VIEW).count(),
        **card_context(request),
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
        context.update(budget=budget, rows=budget_rows(budget, budgets.allocated(user)), grantee=user)
        if user.is_reseller:
            context.update(customers=user.customers.count(),
                           suspended=user.customers.filter(is_active=False).count(),
                           changes=ObjectChange.objects.restrict(user, VIEW).select_related("content_type")[:8])
    return render(request, "dashboard.html", context)
