import uuid

from django.conf import settings
from django.db import models

from panel.core.choices import OperationStatus


class Operation(models.Model):
    """One action on a node: a row before it is a message; its id is the task id.

    Reports from the node are applied to it once (see services.apply_report);
    once terminal it never changes again.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    action = models.CharField(max_length=64, help_text="Protocol task name, e.g. node.ping")
    node_name = models.CharField(max_length=32, db_index=True)
    target_type = models.CharField(max_length=32, blank=True, help_text="e.g. node, vps")
    target_id = models.CharField(max_length=64, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="operations",
    )
    request_id = models.CharField(max_length=64, blank=True)
    payload = models.JSONField(default=dict, blank=True, help_text="The request, secrets redacted")
    status = models.CharField(
        max_length=16, choices=OperationStatus.choices, default=OperationStatus.PENDING,
        db_index=True,
    )
    stage = models.CharField(max_length=64, blank=True, help_text="Where a running operation is")
    percent = models.PositiveSmallIntegerField(default=0)
    log = models.JSONField(default=list, blank=True, help_text="Lines the node reported")
    result = models.JSONField(default=dict, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True, help_text="Last change (a progress report, for a running one)")
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["target_type", "target_id", "-created"])]

    def __str__(self) -> str:
        return f"{self.action} on {self.node_name} ({self.get_status_display()})"

    @property
    def is_terminal(self) -> bool:
        return self.status in OperationStatus.terminal()
