"""Plans: the mapping to protocol limits, and plans created within their owner's rights."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError

from panel.plans.models import Plan
from panel.plans.samples import load_samples
from worker import protocol

# protocol limit name -> Plan field. Both network rates come from the one port speed.
LIMIT_FIELDS: dict[str, str] = {
    "ram": "ram",
    "swap": "swap",
    "diskspace": "diskspace",
    "diskinodes": "diskinodes",
    "quotaugidlimit": "quotaugidlimit",
    "cpus": "cpus",
    "cpulimit": "cpulimit",
    "cpuunits": "cpuunits",
    "numproc": "numproc",
    "numfile": "numfile",
    "iolimit": "iolimit",
    "iopslimit": "iopslimit",
    "rate_in": "port_speed",
    "rate_out": "port_speed",
}


def plan_limits(plan: Plan) -> dict[str, int]:
    """The protocol limits (worker.protocol.LIMITS, every name) a VPS on `plan` gets.

    This is the only place plan fields turn into limits; node messages carry
    this dict. Units already match (bytes, bits/s, counts), so it is a rename.
    """
    return protocol.check_limits({name: int(getattr(plan, field)) for name, field in LIMIT_FIELDS.items()})


def plan_fields_from_limits(limits: dict[str, int]) -> dict[str, int]:
    """The inverse of plan_limits, for samples (rate_in and rate_out are equal there)."""
    return {field: limits[name] for name, field in LIMIT_FIELDS.items()}


def seed_samples(plan_model: Any = Plan) -> list[str]:
    """Create or update the global plans of the samples file (used by the data migration)."""
    names = []
    known = {f.name for f in plan_model._meta.fields}  # a migration's historical model may lack newer fields
    for name, sample in load_samples().items():
        fields = {**plan_fields_from_limits(sample["limits"]), **sample.get("plan", {}),
                  "description": sample.get("description", "")}
        plan_model.objects.update_or_create(name=name, owner=None,
                                            defaults={k: v for k, v in fields.items() if k in known})
        names.append(name)
    return names


EDITABLE = [f.name for f in Plan._meta.fields if f.name not in ("id", "created", "owner")]


def create_plan(actor: Any, *, owner: Any = None, **fields: Any) -> Plan:
    """Admins create global plans (or plans for a reseller); a reseller only its own."""
    if actor.is_reseller:
        if owner is not None and owner != actor:
            raise PermissionDenied("A reseller creates only its own plans.")
        owner = actor
    elif not actor.is_admin:
        raise PermissionDenied("Customers cannot create plans.")
    if owner is not None and not owner.is_reseller:
        raise ValidationError({"owner": "A plan belongs to a reseller, or to nobody (global)."})
    plan = Plan(owner=owner, **{k: v for k, v in fields.items() if k in EDITABLE})
    plan.full_clean()
    plan.save()
    return plan


def update_plan(actor: Any, plan: Plan, **fields: Any) -> Plan:
    if "owner" in fields and fields["owner"] != plan.owner and not actor.is_admin:
        raise PermissionDenied("Only an admin moves a plan to another owner.")
    for name, value in fields.items():
        if name in (*EDITABLE, "owner"):
            setattr(plan, name, value)
    plan.full_clean()
    plan.save()
    return plan


def delete_plan(actor: Any, plan: Plan) -> None:
    plan.delete()
