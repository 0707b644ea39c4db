"""A VPS's addresses: allocated from its node's pools with the VPS, released when it is gone.

The plan says how many: `ipv4_count` IPv4 addresses, and `ipv6_count` IPv6
/64 prefixes (`ipv6_mode` prefix64) or single addresses (addresses). Each
is an `IPAddress` row assigned to the VPS's budget holder ("vps:<ctid>").
Requests carry them as CIDR strings: "198.51.100.7/32",
"2001:db8:0:1::/64", "2001:db8::5/128".
"""

from __future__ import annotations

from django.db.models import QuerySet

from panel.nodes import ippools
from panel.nodes.choices import IPFamily
from panel.nodes.models import IPAddress
from panel.plans.choices import IPv6Mode
from panel.plans.models import Plan
from panel.vps.models import VPS


def of(vps: VPS) -> QuerySet[IPAddress]:
    return IPAddress.objects.filter(assigned_to=vps.budget_holder).select_related("pool").order_by("pk")


def _allocate_v6(vps: VPS, unit_prefix: int) -> IPAddress:
    for pool in ippools.pools_for(vps.node, IPFamily.IPV6):
        if pool.unit_prefix == unit_prefix:
            try:
                return ippools.allocate(pool, owner=vps.customer, assigned_to=vps.budget_holder)
            except ippools.PoolExhausted:
                continue
    kind = "/64 prefix" if unit_prefix == 64 else "IPv6 address"
    raise ippools.PoolExhausted(f"No free {kind} for node {vps.node.name}.")


def allocate(vps: VPS, plan: Plan | None) -> list[IPAddress]:
    """Allocate what `plan` gives a VPS (nothing without a plan); call inside the create's transaction."""
    if plan is None:
        return []
    got = [ippools.allocate_for_node(vps.node, IPFamily.IPV4, owner=vps.customer, assigned_to=vps.budget_holder)
           for _ in range(plan.ipv4_count)]
    unit = 64 if plan.ipv6_mode == IPv6Mode.PREFIX64 else 128
    got += [_allocate_v6(vps, unit) for _ in range(plan.ipv6_count)]
    return got


def cidrs(vps: VPS) -> tuple[list[str], list[str]]:
    """(IPv4, IPv6) as the request sends them."""
    v4, v6 = [], []
    for address in of(vps):
        (v4 if address.pool.family == IPFamily.IPV4 else v6).append(f"{address.address}/{address.prefix_length}")
    return v4, v6


def release(vps: VPS) -> int:
    """Free every address of the VPS (destroyed, or its create failed)."""
    deleted = 0
    for address in of(vps):
        ippools.release(address)
        deleted += 1
    return deleted


def match_plan(vps: VPS, plan: Plan) -> None:
    """After a plan change: allocate what the new plan adds, release (newest first) what it drops."""
    for family, unit, wanted in ((IPFamily.IPV4, 32, plan.ipv4_count),
                                 (IPFamily.IPV6, 64 if plan.ipv6_mode == IPv6Mode.PREFIX64 else 128, plan.ipv6_count)):
        held = [a for a in of(vps) if a.pool.family == family]
        for address in held:
            if family == IPFamily.IPV6 and address.prefix_length != unit:
                ippools.release(address)  # the plan switched between /64s and single addresses
        held = [a for a in held if family == IPFamily.IPV4 or a.prefix_length == unit]
        for address in reversed(held[wanted:]):
            ippools.release(address)
        for _ in range(wanted - len(held)):
            if family == IPFamily.IPV4:
                ippools.allocate_for_node(vps.node, family, owner=vps.customer, assigned_to=vps.budget_holder)
            else:
                _allocate_v6(vps, unit)
