import fnmatch
import secrets
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from panel.core.notify.choices import DeliveryState, NoticeLevel
from panel.core.permissions import VIEW, RestrictedQuerySet, is_admin


class NoticeQuerySet(RestrictedQuerySet):
    """Own notices; admins may also view everybody's."""

    def permission_q(self, user: Any, action: str) -> Q:
        if not getattr(user, "is_authenticated", False):
            return Q(pk__in=[])
        if action == VIEW and is_admin(user):
            return Q()
        return Q(recipient=user)


class Notice(models.Model):
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notices")
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    event = models.CharField(max_length=64, help_text="e.g. traffic.80_percent, vps.suspended")
    level = models.CharField(max_length=16, choices=NoticeLevel.choices, default=NoticeLevel.INFO)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    objects = NoticeQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-pk"]
        indexes = [models.Index(fields=["recipient", "read_at", "-created"])]

    def __str__(self) -> str:
        return self.title


class WebhookQuerySet(RestrictedQuerySet):
    """Admins see all webhooks; a reseller its own; customers have none."""

    def permission_q(self, user: Any, action: str) -> Q:
        if is_admin(user):
            return Q()
        if getattr(user, "is_reseller", False):
            return Q(owner=user)
        return Q(pk__in=[])


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


class Webhook(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks")
    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=100, default=_new_secret, help_text="The HMAC key (shown to the owner)")
    events = models.JSONField(default=list, blank=True,
                              help_text='Event names or patterns such as "vps.*"; empty means every event')
    active = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    objects = WebhookQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    def wants(self, event: str) -> bool:
        return not self.events or any(fnmatch.fnmatchcase(event, pattern) for pattern in self.events)


class DeliveryQuerySet(RestrictedQuerySet):
    def permission_q(self, user: Any, action: str) -> Q:
        if is_admin(user):
            return Q()
        if getattr(user, "is_reseller", False) and action == VIEW:
            return Q(webhook__owner=user)
        return Q(pk__in=[])


class WebhookDelivery(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING,
                             db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook} ({self.state})"
