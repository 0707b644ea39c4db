from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse

from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.core import views as generic
from panel.core.formats import bytes_si
from panel.core.permissions import VIEW
from panel.plans import budgets, filtersets, services
from panel.plans.choices import BUDGET_RESOURCES
from panel.plans.forms import BudgetForm, PlanForm
from panel.plans.models import Budget, Plan
from panel.plans.tables import BudgetTable, PlanTable

STAFF = (Role.ADMIN, Role.RESELLER)
BYTE_RESOURCES = {"ram", "disk", "traffic"}


class PlanListView(generic.ObjectListView):
    queryset = Plan.objects.select_related("owner")
    table = PlanTable
    filterset = filtersets.PlanFilterSet
    add_url = "plans:add"
    add_roles = STAFF

    def hidden_filters(self, request):
        return () if request.user.is_admin else ("owner", "is_global", "over_quota_action")


class PlanView(generic.ObjectView):
    queryset = Plan.objects.select_related("owner")
    template_name = "plans/plan.html"


class PlanEditView(generic.ObjectEditView):
    roles = STAFF
    queryset = Plan.objects.all()
    form = PlanForm

    def save(self, request, form, obj):
        data = {k: v for k, v in form.cleaned_data.items()}
        if obj is None:
            return services.create_plan(request.user, **data)
        return services.update_plan(request.user, obj, **data)

    def success_url(self, request, obj):
        return reverse("plans:plan", args=[obj.pk])


class PlanDeleteView(generic.ObjectDeleteView):
    roles = STAFF
    queryset = Plan.objects.all()
    success_url = "/plans/"

    def delete(self, request, obj):
        services.delete_plan(request.user, obj)


def _used_text(resource: str, value: float) -> str:
    if resource in BYTE_RESOURCES:
        return bytes_si(int(value))
    return f"{value:g}" if resource == "cpus" else str(int(value))


def budget_rows(budget: Budget | None, allocated: dict[str, int],
                used: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """One row per resource: granted (None = unlimited), allocated, how full it is, and what is used now.

    Without a budget nothing is granted at this level (the page says what that means for the role).
    `used` comes from `budgets.used` (the usage app's figures); a resource it lacks shows no use.
    """
    rows = []
    for resource, label in BUDGET_RESOURCES.items():
        granted = getattr(budget, resource) if budget is not None else None
        taken = allocated.get(resource, 0)
        show = bytes_si if resource in BYTE_RESOURCES else str
        percent = min(100, round(100 * taken / granted)) if granted else (0 if granted is None or not taken else 100)
        text = "no budget" if budget is None else "unlimited" if granted is None else show(granted)
        in_use = (used or {}).get(resource)
        rows.append({"resource": resource, "label": label[:1].upper() + label[1:], "granted": granted,
                     "granted_text": text, "allocated_text": show(taken), "percent": percent,
                     "used": in_use, "used_text": None if in_use is None else _used_text(resource, in_use),
                     "level": "bad" if percent >= 100 else "warn" if percent >= 80 else "ok"})
    return rows


def _budget_context(grantee: User) -> dict[str, Any]:
    budget = Budget.objects.filter(grantee=grantee).select_related("granted_by").first()
    rows = budget_rows(budget, budgets.allocated(grantee), budgets.used(grantee))
    return {"grantee": grantee, "budget": budget, "rows": rows}


class MyBudgetView(generic.PanelView):
    """My budget: granted, allocated and used (the usage app's figures); a reseller's customers' budgets too."""

    def get(self, request):
        if request.user.is_admin:
            return redirect("plans:budgets")
        context = {"title": "Budget", **_budget_context(request.user)}
        if request.user.is_reseller:
            customers = Budget.objects.restrict(request.user, VIEW).exclude(grantee=request.user)
            context["table"] = BudgetTable(customers.select_related("grantee", "granted_by"), request)
        return render(request, "plans/my_budget.html", context)


class BudgetListView(generic.ObjectListView):
    roles = STAFF
    queryset = Budget.objects.select_related("grantee", "granted_by")
    table = BudgetTable
    filterset = filtersets.BudgetFilterSet
    title = "Budgets"

    def hidden_filters(self, request):
        return () if request.user.is_admin else ("granted_by",)


def _with_units(exc: ValidationError, grantee: User) -> ValidationError:
    """The service says "at most the reseller's own budget: 64000000000"; say "64 GB" on the page."""
    reseller_budget = Budget.objects.filter(grantee_id=grantee.owner_id).first() if grantee.owner_id else None
    if reseller_budget is None or not hasattr(exc, "error_dict"):
        return exc
    errors = {}
    for field, field_errors in exc.error_dict.items():
        cap = getattr(reseller_budget, field, None)
        if field in BYTE_RESOURCES and cap is not None:
            errors[field] = f"At most the reseller's own budget: {bytes_si(cap)}."
        else:
            errors[field] = field_errors
    return ValidationError(errors)


class UserBudgetView(generic.PanelView):
    """A user's budget (granted / allocated / used); whoever may grant it edits it here (budgets.grant decides)."""

    roles = STAFF
    queryset = User.objects.all()

    def can_grant(self, request, grantee: User) -> bool:
        if grantee.is_admin or grantee.pk == request.user.pk:
            return False
        return request.user.is_admin or grantee.owner_id == request.user.pk

    def get(self, request, pk: int):
        grantee = self.get_object(request, VIEW, pk=pk)
        return self._render(request, grantee, self._form(request, grantee))

    def post(self, request, pk: int):
        grantee = self.get_object(request, VIEW, pk=pk)
        if not self.can_grant(request, grantee):
            raise PermissionDenied("You may not grant this budget.")
        form = self._form(request, grantee)
        if form.is_valid():
            try:
                budgets.grant(request.user, grantee, **form.cleaned_data)
            except ValidationError as exc:
                generic.add_service_error(form, _with_units(exc, grantee))
            else:
                messages.success(request, f"Budget of {grantee.username} saved.")
                return HttpResponseRedirect(reverse("plans:user-budget", args=[grantee.pk]))
        return self._render(request, grantee, form, status=400)

    def _form(self, request, grantee: User) -> BudgetForm | None:
        if not self.can_grant(request, grantee):
            return None
        budget = Budget.objects.filter(grantee=grantee).first()
        initial = {r: getattr(budget, r) if budget is not None else 0 for r in BUDGET_RESOURCES}
        return BudgetForm(request.POST if request.method == "POST" else None, initial=initial, user=request.user)

    def _render(self, request, grantee: User, form: BudgetForm | None, status: int = 200):
        context = {"title": f"Budget of {grantee.username}", "form": form, **_budget_context(grantee)}
        if grantee.owner_id:
            context["reseller_rows"] = _budget_context(grantee.owner)["rows"]
        template = "plans/budget_card.html" if generic.is_htmx(request) else "plans/user_budget.html"
        return render(request, template, context, status=status)
