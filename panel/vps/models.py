from typing import Any

from django.conf import settings
from django.db import connection, models
from django.db.models import Q

from panel.core.permissions import RestrictedQuerySet, tenant_q
from panel.nodes.choices import NodeState
from panel.vps.choices import DesiredState, VpsState
from panel.vps.validators import validate_hostname, validate_template_name

CTID_SEQUENCE = "vps_ctid_seq"
CTID_START = 101


def next_ctid() -> int:
    """CTIDs are unique across the installation and never reused (a PostgreSQL sequence)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(%s)", [CTID_SEQUENCE])
        return cursor.fetchone()[0]


class VPSQuerySet(RestrictedQuerySet):
    def permission_q(self, user: Any, action: str) -> Q:
        return tenant_q(user, "customer")

    def alive(self) -> "VPSQuerySet":
        return self.exclude(state=VpsState.DESTROYED)


class VPS(models.Model):
    """A VPS: its desired state (what the panel asks of the node) and its last known state."""

    # "ctid" is a PostgreSQL system column name.
    ctid = models.PositiveIntegerField(unique=True, editable=False, db_column="vps_ctid")
    node = models.ForeignKey("nodes.Node", on_delete=models.PROTECT, related_name="vpss")
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="vpss")
    plan = models.ForeignKey("plans.Plan", null=True, blank=True, on_delete=models.PROTECT, related_name="vpss")
    hostname = models.CharField(max_length=253, validators=[validate_hostname])
    template = models.CharField(max_length=64, validators=[validate_template_name])
    limits = models.JSONField(default=dict, blank=True, help_text="Desired limits (protocol.LIMITS names and units)")
    onboot = models.BooleanField(default=True, help_text="Start when the node starts")
    desired_state = models.CharField(max_length=16, choices=DesiredState.choices, default=DesiredState.RUNNING)
    state = models.CharField(max_length=16, choices=VpsState.choices, default=VpsState.CREATING, db_index=True)
    init_pid = models.PositiveIntegerField(null=True, blank=True)
    suspended = models.BooleanField(default=False, help_text="Stopped and locked against its customer")
    suspend_reason = models.CharField(max_length=200, blank=True)
    ssh_keys = models.JSONField(default=list, blank=True, help_text="OpenSSH public keys for root")
    ugid_quotas = models.JSONField(default=list, blank=True,
                                   help_text="Second-level quotas inside the VPS (protocol.check_ugid_quotas)")
    state_changed = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = VPSQuerySet.as_manager()

    class Meta:
        ordering = ["ctid"]
        verbose_name = "VPS"
        verbose_name_plural = "VPSs"

    def __str__(self) -> str:
        return f"{self.ctid} ({self.hostname})"

    @property
    def display_state(self) -> str:
        """What to show: a VPS on a node that stopped heartbeating is unknown, not stopped."""
        if self.state != VpsState.DESTROYED and self.node.state != NodeState.UP:
            return "unknown"
        return self.state

    @property
    def budget_holder(self) -> str:
        return f"vps:{self.ctid}"


class IdempotencyKey(models.Model):
    """A create request's `Idempotency-Key`: a retry with the same key and body gets the first result."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64, help_text="SHA-256 of the canonical request body")
    vps = models.ForeignKey(VPS, on_delete=models.CASCADE, related_name="+")
    operation = models.ForeignKey("core.Operation", null=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="vps_idempotency_unique_key")]

    def __str__(self) -> str:
        return self.key


class VpsDataQuerySet(RestrictedQuerySet):
    def permission_q(self, user: Any, action: str) -> Q:
        return tenant_q(user, "vps__customer")


class Snapshot(models.Model):
    """A snapshot of a VPS's volume on its node, as the node last reported it (its pool keeps it)."""

    vps = models.ForeignKey(VPS, on_delete=models.CASCADE, related_name="snapshots")
    name = models.CharField(max_length=64)
    created = models.DateTimeField(help_text="When the node took it")

    objects = VpsDataQuerySet.as_manager()

    class Meta:
        ordering = ["vps", "created", "name"]
        constraints = [models.UniqueConstraint(fields=["vps", "name"], name="vps_snapshot_unique_name")]

    def __str__(self) -> str:
        return self.name


class Backup(models.Model):
    """A backup of a VPS in its node's backup directory, as the node last reported it."""

    vps = models.ForeignKey(VPS, on_delete=models.CASCADE, related_name="backups")
    backup_id = models.CharField(max_length=32, help_text="The node's id: UTC time to the microsecond")
    created = models.DateTimeField(help_text="When the node finished it")
    size = models.BigIntegerField(help_text="Bytes of its archive")

    objects = VpsDataQuerySet.as_manager()

    class Meta:
        ordering = ["vps", "created"]
        constraints = [models.UniqueConstraint(fields=["vps", "backup_id"], name="vps_backup_unique_id")]

    def __str__(self) -> str:
        return self.backup_id
