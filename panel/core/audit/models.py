from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q

from panel.core.audit.choices import ChangeAction, JournalKind
from panel.core.audit.registry import visible_objects_q
from panel.core.permissions import CHANGE, VIEW, RestrictedQuerySet, is_admin


class ObjectChangeQuerySet(RestrictedQuerySet):
    def permission_q(self, user: Any, action: str) -> Q:
        if action != VIEW:
            return Q(pk__in=[])
        return Q() if is_admin(user) else visible_objects_q(user)


class ObjectChange(models.Model):
    """One create, update or delete of an audited row (never changed afterwards)."""

    time = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    user_name = models.CharField(max_length=150, blank=True, help_text="The user's name at the time")
    source = models.CharField(max_length=32, help_text="web, api, or the context that made it (e.g. node-report)")
    request_id = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=16, choices=ChangeAction.choices)
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    changed = models.JSONField(default=list, blank=True, help_text="Names of the fields that changed")

    objects = ObjectChangeQuerySet.as_manager()

    class Meta:
        ordering = ["-time", "-pk"]
        indexes = [models.Index(fields=["content_type", "object_id", "-time"])]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.content_type.model} {self.object_repr}"


class JournalQuerySet(RestrictedQuerySet):
    """Staff notes: admins see all; a reseller those on objects it can see; customers none."""

    def permission_q(self, user: Any, action: str) -> Q:
        if is_admin(user):
            return Q()
        if not getattr(user, "is_reseller", False):
            return Q(pk__in=[])
        if action == CHANGE:
            return Q(author=user)
        return visible_objects_q(user)


class JournalEntry(models.Model):
    """A free-text note on any audited object (a customer, a VPS, a node...)."""

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    object_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=JournalKind.choices, default=JournalKind.INFO)
    comments = models.TextField()

    objects = JournalQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name_plural = "journal entries"
        indexes = [models.Index(fields=["content_type", "object_id", "-created"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} note on {self.content_type.model} {self.object_id}"
