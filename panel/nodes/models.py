import ipaddress
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from panel.core.permissions import RestrictedQuerySet, tenant_q
from panel.nodes.choices import IPFamily, NodeState
from worker import protocol


class Node(models.Model):
    """A machine that runs VPSs; the panel reaches it through queue node.<name>."""

    name = models.CharField(
        max_length=32, unique=True,
        validators=[RegexValidator(protocol.NODE_NAME_RE, "1-32 lower-case letters, digits or '-'")],
    )
    description = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=16, choices=NodeState.choices, default=NodeState.NEW)
    last_seen = models.DateTimeField(null=True, blank=True)
    facts = models.JSONField(default=dict, blank=True, help_text="What the node last said about itself")
    capacity = models.JSONField(default=dict, blank=True, help_text="CPUs, memory and load at the last heartbeat")
    heartbeat_interval = models.PositiveIntegerField(default=protocol.HEARTBEAT_SECONDS)
    created = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()  # admins only

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        return protocol.node_queue(self.name)


class NodeGroup(models.Model):
    """Nodes that share IP pools (e.g. one rack or one upstream network)."""

    name = models.CharField(max_length=64, unique=True)
    description = models.CharField(max_length=200, blank=True)
    nodes = models.ManyToManyField(Node, blank=True, related_name="groups")

    objects = RestrictedQuerySet.as_manager()  # admins only

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class IPPool(models.Model):
    """An IPv4 range or IPv6 prefix serving one node or one node group.

    IPv6 pools hand out whole /64 prefixes (`unit_prefix` 64) or single
    addresses (128); IPv4 pools single addresses (32).
    """

    name = models.CharField(max_length=64, unique=True)
    family = models.PositiveSmallIntegerField(choices=IPFamily.choices)
    network = models.CharField(max_length=43, help_text="CIDR, e.g. 198.51.100.0/24 or 2001:db8:1::/48")
    gateway = models.GenericIPAddressField(null=True, blank=True)
    unit_prefix = models.PositiveSmallIntegerField(default=32, help_text="32 (IPv4), 64 or 128 (IPv6)")
    node = models.ForeignKey(Node, null=True, blank=True, on_delete=models.PROTECT, related_name="ip_pools")
    group = models.ForeignKey(NodeGroup, null=True, blank=True, on_delete=models.PROTECT, related_name="ip_pools")
    active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)

    objects = RestrictedQuerySet.as_manager()  # admins only

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(node__isnull=False, group__isnull=True)
                                   | Q(node__isnull=True, group__isnull=False),
                                   name="nodes_ippool_node_xor_group"),
            models.CheckConstraint(condition=Q(family=4, unit_prefix=32) | Q(family=6, unit_prefix__in=[64, 128]),
                                   name="nodes_ippool_unit_fits_family"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.network})"

    def clean(self) -> None:
        """Well-formed, not overlapping another pool, gateway inside."""
        try:
            network = ipaddress.ip_network(self.network)
        except ValueError as exc:
            raise ValidationError({"network": f"Not a network: {exc}"}) from exc
        self.network = str(network)
        if network.version != self.family:
            raise ValidationError({"network": f"Not an IPv{self.family} network."})
        if self.family == IPFamily.IPV6 and self.unit_prefix == 64 and network.prefixlen > 64:
            raise ValidationError({"network": "A pool of /64 prefixes must be /64 or larger."})
        if self.gateway and ipaddress.ip_address(self.gateway) not in network:
            raise ValidationError({"gateway": "The gateway must be inside the network."})
        for other in IPPool.objects.filter(family=self.family).exclude(pk=self.pk):
            if ipaddress.ip_network(other.network).overlaps(network):
                raise ValidationError({"network": f"Overlaps pool {other.name} ({other.network})."})


class IPAddressQuerySet(RestrictedQuerySet):
    """Admins: all. A customer: addresses it holds; a reseller: its customers'. Both may edit reverse DNS."""

    def permission_q(self, user: Any, action: str) -> Q:
        return tenant_q(user, "owner")


class IPAddress(models.Model):
    """An allocated address (or IPv6 /64); the row is deleted when released."""

    pool = models.ForeignKey(IPPool, on_delete=models.PROTECT, related_name="addresses")
    address = models.GenericIPAddressField(unique=True, help_text="The address, or the /64's network address")
    prefix_length = models.PositiveSmallIntegerField(help_text="32 or 128 for one address, 64 for a prefix")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="ip_addresses", help_text="The customer holding it")
    assigned_to = models.CharField(max_length=64, blank=True, db_index=True, help_text='e.g. "vps:101"')
    ptr = models.CharField(max_length=253, blank=True, help_text="Reverse DNS name, set by its customer")
    allocated = models.DateTimeField(auto_now_add=True)

    objects = IPAddressQuerySet.as_manager()

    class Meta:
        ordering = ["pool", "allocated", "pk"]
        verbose_name = "IP address"

    def __str__(self) -> str:
        return f"{self.address}/{self.prefix_length}"
