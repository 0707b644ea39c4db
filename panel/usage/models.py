"""Usage of VPSs: raw samples (48 h), 5-minute rollups (14 days), hourly rollups (13 months).

Not audited (high volume). Every row hangs off a VPS, so every queryset is
restricted like the VPS's: customers their own, resellers their customers'.
"""

from typing import Any

from django.db import models
from django.db.models import Q

from panel.core.permissions import RestrictedQuerySet, tenant_q


class VpsUsageQuerySet(RestrictedQuerySet):
    def permission_q(self, user: Any, action: str) -> Q:
        return tenant_q(user, "vps__customer")


def _total() -> models.BigIntegerField:
    return models.BigIntegerField(null=True, blank=True)


class Sample(models.Model):
    """One VPS's counters at one moment, with rates over the time since its previous sample in the same epoch."""

    vps = models.ForeignKey("vps.VPS", on_delete=models.CASCADE, related_name="+")
    time = models.DateTimeField()
    epoch = models.CharField(max_length=64)
    cpu_ns = _total()
    net_rx_bytes = _total()
    net_tx_bytes = _total()
    net_rx_packets = _total()
    net_tx_packets = _total()
    ram_bytes = _total()
    swap_bytes = _total()
    disk_bytes = _total()
    disk_inodes = _total()
    processes = _total()
    seconds = models.FloatField(null=True, blank=True, help_text="Since the previous sample of the same epoch")
    cpu_percent = models.FloatField(null=True, blank=True, help_text="Percent of one CPU")
    rx_bps = models.FloatField(null=True, blank=True, help_text="bits/s received")
    tx_bps = models.FloatField(null=True, blank=True, help_text="bits/s sent")
    rx_bytes = models.BigIntegerField(default=0, help_text="Traffic counted by this sample")
    tx_bytes = models.BigIntegerField(default=0)

    objects = VpsUsageQuerySet.as_manager()

    class Meta:
        ordering = ["vps", "time"]
        constraints = [models.UniqueConstraint(fields=["vps", "time"], name="usage_sample_unique_time")]
        indexes = [models.Index(fields=["time"])]

    def __str__(self) -> str:
        return f"{self.vps_id} at {self.time}"


class Rollup(models.Model):
    """Samples summarised over `period` seconds (300 or 3600) from `start`."""

    FIVE_MINUTES, HOUR = 300, 3600

    vps = models.ForeignKey("vps.VPS", on_delete=models.CASCADE, related_name="+")
    period = models.PositiveIntegerField()
    start = models.DateTimeField()
    samples = models.PositiveIntegerField(default=0)
    cpu_percent_avg = models.FloatField(null=True, blank=True)
    cpu_percent_max = models.FloatField(null=True, blank=True)
    ram_avg = _total()
    ram_max = _total()
    swap_max = _total()
    disk_max = _total()
    inodes_max = _total()
    processes_max = _total()
    rx_bps_avg = models.FloatField(null=True, blank=True)
    rx_bps_max = models.FloatField(null=True, blank=True)
    tx_bps_avg = models.FloatField(null=True, blank=True)
    tx_bps_max = models.FloatField(null=True, blank=True)
    rx_bytes = models.BigIntegerField(default=0)
    tx_bytes = models.BigIntegerField(default=0)

    objects = VpsUsageQuerySet.as_manager()

    class Meta:
        ordering = ["vps", "period", "start"]
        constraints = [models.UniqueConstraint(fields=["vps", "period", "start"], name="usage_rollup_unique_bucket")]
        indexes = [models.Index(fields=["period", "start"])]

    def __str__(self) -> str:
        return f"{self.vps_id} {self.period}s from {self.start}"


class CounterState(models.Model):
    """The last totals seen per VPS: deltas are computed against it, so expiring samples loses nothing."""

    vps = models.OneToOneField("vps.VPS", on_delete=models.CASCADE, primary_key=True, related_name="+")
    epoch = models.CharField(max_length=64)
    time = models.DateTimeField()
    totals = models.JSONField(default=dict)
    failcnt = models.JSONField(default=dict, help_text="Beancounter row -> failcnt")

    def __str__(self) -> str:
        return f"{self.vps_id} @ {self.epoch}"


class Beancounter(models.Model):
    """A VPS's beancounter row as last reported (vzubc's table)."""

    vps = models.ForeignKey("vps.VPS", on_delete=models.CASCADE, related_name="+")
    resource = models.CharField(max_length=32)
    held = models.BigIntegerField(default=0)
    maxheld = models.BigIntegerField(default=0)
    barrier = models.BigIntegerField(default=0)
    limit = models.BigIntegerField(default=0)
    failcnt = models.BigIntegerField(default=0)
    updated = models.DateTimeField()

    objects = VpsUsageQuerySet.as_manager()

    class Meta:
        ordering = ["vps", "resource"]
        constraints = [models.UniqueConstraint(fields=["vps", "resource"], name="usage_beancounter_unique_row")]

    def __str__(self) -> str:
        return f"{self.vps_id} {self.resource}"


class FailEvent(models.Model):
    """A beancounter's failcnt grew by `count` between the previous sample and `time` (kept 13 months)."""

    vps = models.ForeignKey("vps.VPS", on_delete=models.CASCADE, related_name="+")
    time = models.DateTimeField()
    resource = models.CharField(max_length=32)
    count = models.PositiveIntegerField()
    held = models.BigIntegerField(null=True, blank=True)
    limit = models.BigIntegerField(null=True, blank=True)

    objects = VpsUsageQuerySet.as_manager()

    class Meta:
        ordering = ["-time", "pk"]
        indexes = [models.Index(fields=["vps", "time"]), models.Index(fields=["time"])]

    def __str__(self) -> str:
        return f"{self.vps_id} {self.resource} +{self.count} at {self.time}"


class TrafficPeriod(models.Model):
    """A VPS's traffic (both directions) in one billing month, from the plan's reset day."""

    vps = models.ForeignKey("vps.VPS", on_delete=models.CASCADE, related_name="+")
    start = models.DateField()
    end = models.DateField(help_text="The next period's start")
    rx_bytes = models.BigIntegerField(default=0)
    tx_bytes = models.BigIntegerField(default=0)
    quota = models.BigIntegerField(default=0, help_text="The plan's traffic when the period began; 0 = unlimited")
    notified_80 = models.BooleanField(default=False)
    notified_100 = models.BooleanField(default=False)
    over_action = models.CharField(max_length=16, blank=True, help_text="What was done over quota, once")
    over_action_at = models.DateTimeField(null=True, blank=True)

    objects = VpsUsageQuerySet.as_manager()

    class Meta:
        ordering = ["vps", "-start"]
        constraints = [models.UniqueConstraint(fields=["vps", "start"], name="usage_traffic_unique_period")]

    def __str__(self) -> str:
        return f"{self.vps_id} from {self.start}"

    @property
    def total(self) -> int:
        return self.rx_bytes + self.tx_bytes
