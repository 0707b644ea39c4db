"""IP pools: allocation that never hands out an address twice.

An `IPAddress` row exists only while the address (or IPv6 /64) is
allocated; `address` is unique across the whole installation, so two
concurrent allocations of the same address cannot both commit: the loser
gets an IntegrityError inside its savepoint and takes the next free one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from panel.nodes.choices import IPFamily
from panel.nodes.models import IPAddress, IPPool, Node

HOSTNAME_RE = re.compile(r"^(?=.{1,253}\.?$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*"
                         r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.?$", re.IGNORECASE)
MAX_TRIES = 50


class PoolExhausted(ValidationError):
    pass


def candidates(pool: IPPool) -> Iterator[tuple[str, int]]:
    """(address, prefix length) units of `pool` in order: hosts for IPv4, /64s or addresses for IPv6."""
    network = ipaddress.ip_network(pool.network)
    skip = {str(a) for a in (pool.gateway,) if a}
    if network.version == 4:
        for host in network.hosts():
            if str(host) not in skip:
                yield str(host), 32
    elif pool.unit_prefix == 64:
        for subnet in network.subnets(new_prefix=64) if network.prefixlen <= 64 else []:
            yield str(subnet.network_address), 64
    else:
        for host in network.hosts():
            if str(host) not in skip:
                yield str(host), 128


def allocate(pool: IPPool, *, owner: Any = None, assigned_to: str = "") -> IPAddress:
    """The first free unit of `pool`, recorded for `owner` (a customer) and `assigned_to` (e.g. "vps:101")."""
    for _ in range(MAX_TRIES):
        used = set(IPAddress.objects.filter(pool=pool).values_list("address", flat=True))
        free = next(((a, p) for a, p in candidates(pool) if a not in used), None)
        if free is None:
            raise PoolExhausted(f"IP pool {pool.name} has no free address.")
        try:
            with transaction.atomic():
                return IPAddress.objects.create(pool=pool, address=free[0], prefix_length=free[1], owner=owner,
                                                assigned_to=assigned_to)
        except IntegrityError:
            continue  # taken concurrently: look again
    raise PoolExhausted(f"IP pool {pool.name}: no address after {MAX_TRIES} tries (heavy contention).")


def pools_for(node: Node, family: int) -> list[IPPool]:
    """Pools serving `node`: its own first, then its groups'."""
    own = list(IPPool.objects.filter(node=node, family=family, active=True))
    return own + list(IPPool.objects.filter(group__nodes=node, family=family, active=True).distinct())


def allocate_for_node(node: Node, family: int, **kwargs: Any) -> IPAddress:
    for pool in pools_for(node, family):
        try:
            return allocate(pool, **kwargs)
        except PoolExhausted:
            continue
    raise PoolExhausted(f"No free IPv{family} address for node {node.name}.")


def release(address: IPAddress) -> None:
    address.delete()


def set_ptr(address: IPAddress, ptr: str) -> IPAddress:
    """Set the reverse-DNS name (empty clears it)."""
    ptr = ptr.strip()
    if ptr and not HOSTNAME_RE.match(ptr):
        raise ValidationError({"ptr": "A host name such as vps1.example.com."})
    address.ptr = ptr.rstrip(".")
    address.save()
    return address


def create_pool(**fields: Any) -> IPPool:
    pool = IPPool(**fields)
    if pool.family == IPFamily.IPV4:
        pool.unit_prefix = 32
    pool.full_clean()
    pool.save()
    return pool


def pool_size(pool: IPPool) -> int:
    """How many units `pool` can hand out (the same units `candidates` yields), without listing them."""
    network = ipaddress.ip_network(pool.network)
    if network.version == 6 and pool.unit_prefix == 64:
        return 2 ** (64 - network.prefixlen) if network.prefixlen <= 64 else 0
    hosts = network.num_addresses
    if network.version == 4 and network.prefixlen < 31:
        hosts -= 2  # network and broadcast
    elif network.version == 6 and network.prefixlen < 127:
        hosts -= 1  # the subnet-router anycast address
    gateway = pool.gateway and ipaddress.ip_address(pool.gateway) in network
    return max(0, hosts - (1 if gateway else 0))
