"""Second-level quotas: disk limits per user or group inside a VPS (OpenVZ's ugid quota, protocol 1.2).

Only for VPSs whose plan allows them (`quotaugidlimit` > 0: at most that
many users, and as many groups, carry limits). The panel keeps the desired
list on the VPS (`VPS.ugid_quotas`, audited with it) and every VPS request
carries the whole list; the node sets it on the volume when the VPS runs
(worker/quotas.py).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import transaction

from panel.core.forms import ByteSizeField, UserFormMixin
from panel.core.models import Operation
from panel.vps import services
from panel.vps.models import VPS
from worker import protocol

KINDS = {"user": "User", "group": "Group"}


def allowed(vps: VPS) -> int:
    """How many users (and as many groups) may carry limits; 0: the plan has no second-level quota."""
    return int(vps.limits.get("quotaugidlimit", 0) or 0)


def _locked(actor: Any, vps: VPS) -> VPS:
    """The VPS row, locked for this transaction (two changes at once must not lose one), after the usual checks."""
    vps = VPS.objects.select_for_update(of=("self",)).select_related("node", "plan", "customer").get(pk=vps.pk)
    return services._checked(actor, vps)


def _replace(actor: Any, vps: VPS, quotas: list[dict[str, Any]]) -> Operation:
    limit = allowed(vps)
    if limit <= 0:
        raise ValidationError("This VPS's plan has no per-user disk quotas.")
    for kind, label in KINDS.items():
        if sum(1 for q in quotas if q["kind"] == kind) > limit:
            raise ValidationError(f"At most {limit} {label.lower()}{'s' if limit != 1 else ''} may have limits "
                                  "on this plan: remove one first.")
    try:
        protocol.check_ugid_quotas(quotas, limit)
    except protocol.ProtocolError as exc:
        raise ValidationError(str(exc)) from exc
    vps.ugid_quotas = sorted(quotas, key=lambda q: (q["kind"], q["id"]))
    vps.save(update_fields=["ugid_quotas", "updated"])
    return services._send(actor, vps, protocol.TASK_VPS_SET)


@transaction.atomic
def set_quota(actor: Any, vps: VPS, *, kind: str, ident: int, space_hard: int, space_soft: int = 0,
              inodes_hard: int = 0, inodes_soft: int = 0) -> Operation:
    """Limits for one user or group id (as the VPS sees it), replacing its earlier ones."""
    vps = _locked(actor, vps)
    quota = {"kind": kind, "id": ident, "space_soft": space_soft, "space_hard": space_hard,
             "inodes_soft": inodes_soft, "inodes_hard": inodes_hard}
    others = [q for q in vps.ugid_quotas if (q["kind"], q["id"]) != (kind, ident)]
    return _replace(actor, vps, [*others, quota])


@transaction.atomic
def remove_quota(actor: Any, vps: VPS, *, kind: str, ident: int) -> Operation:
    """No more limits for that id (its files stay counted by the node)."""
    vps = _locked(actor, vps)
    left = [q for q in vps.ugid_quotas if (q["kind"], q["id"]) != (kind, ident)]
    if len(left) == len(vps.ugid_quotas):
        raise ValidationError(f"{KINDS.get(kind, kind)} {ident} has no limits.")
    return _replace(actor, vps, left)


class QuotaForm(UserFormMixin, forms.Form):
    kind = forms.ChoiceField(label="For", choices=list(KINDS.items()))
    ident = forms.IntegerField(label="User or group id", min_value=0, max_value=protocol.UGID_MAX,
                               help_text="The numeric id inside the VPS, e.g. 1000 (id -u NAME there shows it)")
    space_hard = ByteSizeField(label="Disk space, hard limit", help_text="e.g. 5 GB; writes past it fail")
    space_soft = ByteSizeField(label="Disk space, soft limit", required=False,
                               help_text="Below the hard limit: a warning level")
    inodes_hard = forms.IntegerField(label="Files, hard limit", min_value=0, required=False,
                                     help_text="How many files and directories")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        hard, soft = data.get("space_hard"), data.get("space_soft")
        if hard is not None and soft and soft > hard:
            self.add_error("space_soft", "The soft limit must not be above the hard limit.")
        return data


class RemoveForm(forms.Form):
    kind = forms.ChoiceField(choices=list(KINDS.items()))
    ident = forms.IntegerField(min_value=0, max_value=protocol.UGID_MAX)
