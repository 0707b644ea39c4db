from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from panel.core.permissions import VIEW, RestrictedQuerySet, tenant_q


class ConsoleMode(models.TextChoices):
    CONSOLE = "console", "Console"
    SHELL = "shell", "Login shell"


class ConsoleSessionQuerySet(RestrictedQuerySet):
    def permission_q(self, user: Any, action: str) -> Q:
        return tenant_q(user, "vps__customer") if action == VIEW else Q(pk__in=[])


class ConsoleSession(models.Model):
    """One browser console session: created when it starts, `ended` set when it ends (both in the audit log)."""

    vps = models.ForeignKey("vps.VPS", on_delete=models.CASCADE, related_name="console_sessions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    mode = models.CharField(max_length=16, choices=ConsoleMode.choices)
    ticket_id = models.CharField(max_length=64, unique=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    started = models.DateTimeField(auto_now_add=True, db_index=True)
    ended = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=200, blank=True)
    bytes_in = models.BigIntegerField(default=0, help_text="Typed in the browser")
    bytes_out = models.BigIntegerField(default=0, help_text="Shown in the browser")

    objects = ConsoleSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-started", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_mode_display()} of CT {self.vps.ctid} by {self.user or 'a deleted user'}"
