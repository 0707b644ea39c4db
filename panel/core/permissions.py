"""Object permissions: one queryset filter per model (NetBox's `restrict`).

Every user-facing model's queryset has `restrict(user, action)`; views and
the API build every queryset from it, so an object a user may not see does
not exist for them (404). `action` is "view" or "change": some objects are
visible but not changeable (a reseller sees the admin's global plans).

Roles are read duck-typed (`is_admin`, `is_reseller`, `is_customer` on the
user) because accounts sits above core.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q

VIEW = "view"
CHANGE = "change"


def is_admin(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and getattr(user, "is_admin", False))


def tenant_q(user: Any, path: str) -> Q:
    """Rows whose user at `path` is `user`, or (for a reseller) one of its customers; admins see all.

    `path` is a lookup to a user foreign key, e.g. "owner" or "vps__customer".
    """
    if not getattr(user, "is_authenticated", False):
        return Q(pk__in=[])
    if is_admin(user):
        return Q()
    if getattr(user, "is_reseller", False):
        return Q(**{path: user}) | Q(**{f"{path}__owner": user})
    return Q(**{path: user})


class RestrictedQuerySet(models.QuerySet):
    """Base for user-facing models. The default: admins see and change everything, others nothing."""

    def restrict(self, user: Any, action: str = VIEW) -> RestrictedQuerySet:
        return self.filter(self.permission_q(user, action))

    def permission_q(self, user: Any, action: str) -> Q:
        return Q() if is_admin(user) else Q(pk__in=[])

    def can(self, user: Any, action: str, obj: models.Model) -> bool:
        return self.restrict(user, action).filter(pk=obj.pk).exists()
