"""The change log and the journal: who changed what, when, from where, before and after.

Every user-facing model is registered once (`register(Model)`, from its
app's `ready()`); saving or deleting one of its rows through the ORM writes
an `ObjectChange` in the same transaction. Who and which request come from
the current *change context*: the middleware opens one per HTTP request
(the user is read when the change happens, so DRF's token users count),
and code outside requests opens its own::

    with change_context(source="node-report", user=None, request_id=op.request_id):
        vps.save()

High-volume rows (usage samples, heartbeats, operation progress) are simply
not registered. `QuerySet.update()` bypasses the log: services change
audited rows with `save()`.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.signals import post_delete, post_save, pre_save

from panel.core.audit.choices import ChangeAction, JournalKind
from panel.core.audit.models import JournalEntry, ObjectChange
from panel.core.audit.registry import AUDITED
from panel.core.middleware import current_request_id
from panel.core.permissions import VIEW, RestrictedQuerySet, is_admin
from panel.core.redaction import redact


@dataclass(frozen=True)
class ChangeContext:
    source: str
    user: Any = None
    request_id: str = ""
    request: Any = None

    def resolve_user(self) -> Any:
        if self.user is not None:
            return self.user
        user = getattr(self.request, "user", None)
        return user if getattr(user, "is_authenticated", False) else None


_context: contextvars.ContextVar[ChangeContext | None] = contextvars.ContextVar("change_context", default=None)


@contextlib.contextmanager
def change_context(*, source: str, user: Any = None, request_id: str = "", request: Any = None) -> Iterator[None]:
    """Attribute changes made inside the block to `user`/`source`/`request_id`."""
    token = _context.set(ChangeContext(source=source, user=user, request_id=request_id, request=request))
    try:
        yield
    finally:
        _context.reset(token)


def register(model: type[models.Model], exclude: tuple[str, ...] = ()) -> None:
    """Log every save and delete of `model` (its queryset must be a RestrictedQuerySet)."""
    if not isinstance(model._default_manager.all(), RestrictedQuerySet):
        raise TypeError(f"{model.__name__}: audited models need a RestrictedQuerySet manager")
    AUDITED[model] = frozenset(exclude)
    uid = f"audit-{model._meta.label_lower}"
    pre_save.connect(_pre_save, sender=model, dispatch_uid=uid + "-pre")
    post_save.connect(_post_save, sender=model, dispatch_uid=uid + "-post")
    post_delete.connect(_post_delete, sender=model, dispatch_uid=uid + "-delete")


def _raw(instance: models.Model) -> dict[str, Any]:
    exclude = AUDITED.get(type(instance), frozenset())
    data = {f.attname: f.value_from_object(instance) for f in instance._meta.concrete_fields if f.name not in exclude}
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def _pre_save(sender, instance, raw=False, **kwargs) -> None:
    old = None if raw or instance._state.adding else sender._base_manager.filter(pk=instance.pk).first()
    instance._audit_before = _raw(old) if old is not None else None


def _post_save(sender, instance, created, raw=False, **kwargs) -> None:
    if raw:
        return
    before = None if created else getattr(instance, "_audit_before", None)
    _record(instance, ChangeAction.CREATE if created else ChangeAction.UPDATE, before, _raw(instance))


def _post_delete(sender, instance, **kwargs) -> None:
    _record(instance, ChangeAction.DELETE, _raw(instance), None)


def _record(instance: models.Model, action: str, before: dict | None, after: dict | None) -> None:
    if action == ChangeAction.UPDATE:
        before = before or {}
        changed = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
        if not changed:
            return
    else:
        changed = sorted(after or before or {})
    ctx = _context.get() or ChangeContext(source="system")
    user = ctx.resolve_user()
    ObjectChange.objects.create(
        user=user if user is not None and user.pk is not None else None,
        user_name=getattr(user, "username", "") or "",
        source=ctx.source,
        request_id=ctx.request_id or current_request_id(),
        action=action,
        content_type=ContentType.objects.get_for_model(instance),
        object_id=str(instance.pk),
        object_repr=str(instance)[:200],
        before=redact(before),
        after=redact(after),
        changed=changed,
    )




def add_note(user: Any, obj: models.Model, comments: str, kind: str = JournalKind.INFO) -> JournalEntry:
    """A journal note by an admin or reseller on an audited object the author can see."""
    if not (is_admin(user) or getattr(user, "is_reseller", False)):
        raise PermissionDenied("Only admins and resellers keep journal notes.")
    model = type(obj)
    if model not in AUDITED or not model._default_manager.all().restrict(user, VIEW).filter(pk=obj.pk).exists():
        raise ValidationError({"object_id": "No such object."})
    if not comments.strip():
        raise ValidationError({"comments": "A note needs some text."})
    return JournalEntry.objects.create(author=user, content_type=ContentType.objects.get_for_model(obj),
                                       object_id=str(obj.pk), kind=kind, comments=comments)
