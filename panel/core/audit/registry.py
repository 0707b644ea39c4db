"""The audited models (filled by `services.register`) and what a user may see of them."""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import CharField, Q
from django.db.models.functions import Cast

from panel.core.permissions import VIEW

# model -> field names left out of the log (e.g. last_login, last_used)
AUDITED: dict[type[models.Model], frozenset[str]] = {}


def registered_models() -> list[type[models.Model]]:
    return list(AUDITED)


def model_for_label(label: str) -> type[models.Model] | None:
    """An audited model by "app_label.modelname", or None."""
    return next((m for m in AUDITED if m._meta.label_lower == label.lower()), None)


def visible_objects_q(user: Any) -> Q:
    """(content_type, object_id) pairs of audited objects `user` may view."""
    query = Q(pk__in=[])
    for model in AUDITED:
        ids = model._default_manager.all().restrict(user, VIEW).annotate(
            _audit_id=Cast("pk", CharField())).values("_audit_id")
        query |= Q(content_type=ContentType.objects.get_for_model(model), object_id__in=ids)
    return query
