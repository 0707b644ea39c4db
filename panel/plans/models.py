from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from panel.core.permissions import CHANGE, RestrictedQuerySet, is_admin, tenant_q
from panel.plans.choices import IPv6Mode, OverQuotaAction


class PlanQuerySet(RestrictedQuerySet):
    """Global plans (no owner) are the admin's; a reseller's plans are its own.

    View: admins all; a reseller the global plans and its own; a customer the
    active global plans and its reseller's. Change: admins all; a reseller its own.
    """

    def permission_q(self, user: Any, action: str) -> Q:
        if not getattr(user, "is_authenticated", False):
            return Q(pk__in=[])
        if is_admin(user):
            return Q()
        if getattr(user, "is_reseller", False):
            return Q(owner=user) if action == CHANGE else Q(owner=user) | Q(owner__isnull=True)
        if action == CHANGE:
            return Q(pk__in=[])
        mine = Q(owner__isnull=True) | (Q(owner_id=user.owner_id) if user.owner_id else Q(pk__in=[]))
        return mine & Q(active=True)


def _bytes(help_text: str) -> models.PositiveBigIntegerField:
    return models.PositiveBigIntegerField(default=0, help_text=help_text)


class Plan(models.Model):
    """A set of VPS limits. Memory, disk and traffic in bytes; rates in bits/s; 0 = unlimited.

    `services.plan_limits()` is the one mapping from these fields to the
    protocol's limit names.
    """

    name = models.CharField(max_length=64, validators=[RegexValidator(r"^[a-z0-9][a-z0-9._-]*$",
                                                                      "Lower-case letters, digits, '.', '_', '-'")])
    description = models.CharField(max_length=200, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                              related_name="plans", help_text="The reseller that sells it; empty for global plans")
    active = models.BooleanField(default=True, help_text="Offered for new VPSs")
    ram = _bytes("RAM, bytes")
    swap = _bytes("swap, bytes")
    diskspace = _bytes("disk space, bytes")
    diskinodes = models.PositiveBigIntegerField(default=0, help_text="inodes")
    quotaugidlimit = models.PositiveIntegerField(default=0, help_text="second-level quota ids; 0 = off")
    cpus = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    cpulimit = models.PositiveIntegerField(default=0, help_text="percent of one CPU; 0 = up to `cpus`")
    cpuunits = models.PositiveIntegerField(default=1000, help_text="CPU weight")
    numproc = models.PositiveIntegerField(default=0, help_text="processes and threads")
    numfile = models.PositiveIntegerField(default=0, help_text="open files per process")
    iolimit = _bytes("disk bandwidth, bytes/s")
    iopslimit = models.PositiveIntegerField(default=0, help_text="disk operations/s")
    port_speed = _bytes("network rate each way, bits/s")
    traffic = _bytes("monthly traffic, bytes (GB = 10^9 bytes in the UI)")
    traffic_reset_day = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(28)],
        help_text="Day of the month the traffic count starts again (1-28)")
    over_quota_action = models.CharField(max_length=16, choices=OverQuotaAction.choices,
                                         default=OverQuotaAction.THROTTLE)
    throttle_rate = _bytes("rate over quota when throttled, bits/s")
    ipv4_count = models.PositiveSmallIntegerField(default=1)
    ipv6_mode = models.CharField(max_length=16, choices=IPv6Mode.choices, default=IPv6Mode.PREFIX64)
    ipv6_count = models.PositiveSmallIntegerField(default=1, help_text="/64 prefixes or addresses, per ipv6_mode")
    backup_slots = models.PositiveSmallIntegerField(default=1)
    created = models.DateTimeField(auto_now_add=True)

    objects = PlanQuerySet.as_manager()

    class Meta:
        ordering = ["owner_id", "ram", "name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="plans_plan_unique_name_per_owner"),
            models.UniqueConstraint(fields=["name"], condition=Q(owner__isnull=True),
                                    name="plans_plan_unique_global_name"),
        ]

    def __str__(self) -> str:
        return self.name


class BudgetQuerySet(RestrictedQuerySet):
    """View: the budget's own tenant. Change: admins all; a reseller those of its customers."""

    def permission_q(self, user: Any, action: str) -> Q:
        if action == CHANGE and not is_admin(user):
            return Q(grantee__owner=user) if getattr(user, "is_reseller", False) else Q(pk__in=[])
        return tenant_q(user, "grantee")


def _limit(label: str) -> models.PositiveBigIntegerField:
    return models.PositiveBigIntegerField(default=0, null=True, blank=True, help_text=f"{label}; empty = unlimited")


class Budget(models.Model):
    """What a reseller (granted by an admin) or a customer (by its reseller or an admin) may allocate.

    A reseller without a budget may allocate nothing; a customer without one
    is limited by its reseller's budget only.
    """

    grantee = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="budget")
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    vps_count = _limit("VPSs")
    ram = _limit("RAM, bytes")
    disk = _limit("disk space, bytes")
    cpus = _limit("CPUs")
    ipv4 = _limit("IPv4 addresses")
    ipv6_prefixes = _limit("IPv6 /64 prefixes")
    traffic = _limit("monthly traffic, bytes")
    updated = models.DateTimeField(auto_now=True)

    objects = BudgetQuerySet.as_manager()

    class Meta:
        ordering = ["grantee__username"]

    def __str__(self) -> str:
        return f"budget of {self.grantee}"


class AllocationQuerySet(RestrictedQuerySet):
    def permission_q(self, user: Any, action: str) -> Q:
        return tenant_q(user, "customer") if action != CHANGE else Q(pk__in=[])


class Allocation(models.Model):
    """One holder's share of its customer's (and reseller's) budget: one row per VPS not destroyed.

    Written only by `budgets.reserve()` and removed by `budgets.release()`;
    `holder` names what holds it (the vps app uses "vps:<ctid>").
    """

    holder = models.CharField(max_length=64, unique=True)
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="allocations")
    reseller = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+", help_text="The customer's reseller when reserved")
    vps_count = models.PositiveIntegerField(default=1)
    ram = models.PositiveBigIntegerField(default=0)
    disk = models.PositiveBigIntegerField(default=0)
    cpus = models.PositiveIntegerField(default=0)
    ipv4 = models.PositiveIntegerField(default=0)
    ipv6_prefixes = models.PositiveIntegerField(default=0)
    traffic = models.PositiveBigIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = AllocationQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.holder
