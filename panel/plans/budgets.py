"""Budgets: what resellers and customers may allocate, checked under row locks.

The allocation interface (docs/budgets.md): whatever holds resources — a
VPS, from creation until it is destroyed, stopped and suspended ones
included — owns one `Allocation` row named by `holder` ("vps:<ctid>").

    reserve(customer, holder, Demand.for_plan(plan))   # create, resize, plan change
    release(holder)                                     # destroy, or a failed create

Call both inside the transaction that creates or changes the holder, so
the row and the holder commit (or roll back) together. `reserve` locks the
reseller's user row, then the customer's (always in that order, so two
reservations cannot deadlock), sums the other allocations of each, and
raises `BudgetExceeded` naming the first resource that does not fit. Only
growing resources are checked: shrinking always succeeds, even over a
lowered budget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Sum

from panel.plans.choices import BUDGET_RESOURCES, IPv6Mode
from panel.plans.models import Allocation, Budget, Plan


@dataclass(frozen=True)
class Demand:
    """What one holder needs, in budget units (bytes, counts)."""

    vps_count: int = 1
    ram: int = 0
    disk: int = 0
    cpus: int = 0
    ipv4: int = 0
    ipv6_prefixes: int = 0
    traffic: int = 0

    @classmethod
    def for_plan(cls, plan: Plan) -> Demand:
        return cls(vps_count=1, ram=plan.ram, disk=plan.diskspace, cpus=plan.cpus, ipv4=plan.ipv4_count,
                   ipv6_prefixes=plan.ipv6_count if plan.ipv6_mode == IPv6Mode.PREFIX64 else 0,
                   traffic=plan.traffic)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class BudgetExceeded(ValidationError):
    """A demand does not fit a budget; `resource` and `level` say which."""

    def __init__(self, *, resource: str, level: str, grantee: Any, limit: int | None, allocated: int, wanted: int):
        self.resource, self.level, self.grantee = resource, level, grantee
        if limit is None:
            detail = f"{level} {grantee} has no budget for {BUDGET_RESOURCES[resource]}"
        else:
            detail = (f"{BUDGET_RESOURCES[resource]} budget of {level} {grantee} exhausted: "
                      f"{allocated} of {limit} allocated, {wanted} more needed")
        super().__init__({"budget": detail}, code="budget_exceeded")


def _totals(**where: Any) -> dict[str, int]:
    sums = Allocation.objects.filter(**where).aggregate(**{r: Sum(r) for r in BUDGET_RESOURCES})
    return {r: sums[r] or 0 for r in BUDGET_RESOURCES}


def allocated(user: Any) -> dict[str, int]:
    """What is allocated against `user`'s budget (a reseller's covers all its customers)."""
    return _totals(reseller=user) if user.is_reseller else _totals(customer=user)


UsedSource = Callable[[Any], dict[str, float]]
_used_source: list[UsedSource] = []


def provide_used(source: UsedSource) -> None:
    """Install what answers `used` — the usage app does when it loads (it sits above this app)."""
    _used_source[:] = [source]


def used(user: Any) -> dict[str, float]:
    """What `user`'s VPSs actually hold per budget resource (panel/usage/held.py); {} without a usage app."""
    return _used_source[0](user) if _used_source else {}


def _check(level: str, grantee: Any, budget: Budget | None, demand: dict[str, int], current: dict[str, int],
           others: dict[str, int]) -> None:
    for resource in BUDGET_RESOURCES:
        growth = demand[resource] - current[resource]
        if growth <= 0:
            continue
        limit = getattr(budget, resource) if budget is not None else 0
        if limit is not None and others[resource] + demand[resource] > limit:
            raise BudgetExceeded(resource=resource, level=level, grantee=grantee,
                                 limit=None if budget is None else limit, allocated=others[resource],
                                 wanted=demand[resource])


def reserve(customer: Any, holder: str, demand: Demand) -> Allocation:
    """Allocate (or change) `holder`'s share for `customer`, or raise BudgetExceeded."""
    user_model = get_user_model()
    with transaction.atomic():
        reseller = None
        reseller_id = user_model.objects.filter(pk=customer.pk).values_list("owner_id", flat=True).first()
        if reseller_id is not None:
            reseller = user_model.objects.select_for_update().get(pk=reseller_id)
        customer = user_model.objects.select_for_update().get(pk=customer.pk)
        if customer.owner_id != reseller_id:
            raise ValidationError("The customer moved to another reseller meanwhile; try again.")
        if not customer.is_customer:
            raise ValidationError("Only customers hold VPSs.")
        current = Allocation.objects.filter(holder=holder).first()
        if current is not None and current.customer_id != customer.pk:
            raise ValidationError({"holder": f"{holder} is allocated to another customer."})
        wanted = demand.as_dict()
        held = {r: getattr(current, r) if current else 0 for r in BUDGET_RESOURCES}
        if reseller is not None:
            budget = Budget.objects.filter(grantee=reseller).first()
            _check("reseller", reseller, budget, wanted, held, _exclude(_totals(reseller=reseller), held))
        budget = Budget.objects.filter(grantee=customer).first()
        if budget is not None:
            _check("customer", customer, budget, wanted, held, _exclude(_totals(customer=customer), held))
        allocation, _ = Allocation.objects.update_or_create(
            holder=holder, defaults={"customer": customer, "reseller": reseller, **wanted})
    return allocation


def _exclude(totals: dict[str, int], held: dict[str, int]) -> dict[str, int]:
    return {r: totals[r] - held[r] for r in BUDGET_RESOURCES}


def release(holder: str) -> bool:
    """Give `holder`'s share back (destroyed, or its create failed). True if it held one."""
    deleted, _ = Allocation.objects.filter(holder=holder).delete()
    return bool(deleted)


def grant(actor: Any, grantee: Any, **limits: int | None) -> Budget:
    """Set `grantee`'s budget: admins grant resellers and customers; a reseller its own customers.

    A customer's budget never exceeds its reseller's in any resource.
    """
    if grantee.is_admin:
        raise ValidationError("Admins have no budget.")
    reseller_budget = None
    if grantee.is_customer and grantee.owner_id is not None:
        if not (actor.is_admin or actor.pk == grantee.owner_id):
            raise PermissionDenied("Only the customer's reseller or an admin grants its budget.")
        reseller_budget = Budget.objects.filter(grantee_id=grantee.owner_id).first()
    elif not actor.is_admin:
        raise PermissionDenied("Only an admin grants this budget.")
    unknown = sorted(set(limits) - set(BUDGET_RESOURCES))
    if unknown:
        raise ValidationError(f"Unknown budget resources: {', '.join(unknown)}")
    if grantee.owner_id is not None:
        for resource, value in limits.items():
            cap = getattr(reseller_budget, resource) if reseller_budget is not None else 0
            if cap is not None and (value is None or value > cap):
                raise ValidationError({resource: f"At most the reseller's own budget: {cap}."})
    budget, _ = Budget.objects.get_or_create(grantee=grantee, defaults={"granted_by": actor})
    for resource, value in limits.items():
        setattr(budget, resource, value)
    budget.granted_by = actor
    budget.save()
    return budget


def revoke(actor: Any, budget: Budget) -> None:
    """Remove a budget: a reseller can then allocate nothing, a customer only its reseller's."""
    if not Budget.objects.can(actor, "change", budget):
        raise PermissionDenied("Not your budget to remove.")
    budget.delete()
