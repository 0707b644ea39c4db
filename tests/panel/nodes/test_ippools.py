import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from panel.nodes import ippools
from panel.nodes.models import IPAddress, IPPool, Node, NodeGroup
from tests.panel.tenants import make_tenants

pytestmark = pytest.mark.integration


@pytest.fixture
def node(db):
    return Node.objects.create(name="n1")


@pytest.mark.django_db
def test_allocate_release_and_never_twice(node):
    pool = ippools.create_pool(name="v4", family=4, network="198.51.100.0/29", gateway="198.51.100.1", node=node)
    got = [ippools.allocate(pool).address for _ in range(5)]
    assert got == [f"198.51.100.{i}" for i in (2, 3, 4, 5, 6)]  # no network, gateway or broadcast
    with pytest.raises(ippools.PoolExhausted):
        ippools.allocate(pool)
    ippools.release(IPAddress.objects.get(address="198.51.100.4"))
    assert ippools.allocate(pool).address == "198.51.100.4"
    with pytest.raises(IntegrityError), transaction.atomic():
        IPAddress.objects.create(pool=pool, address="198.51.100.2", prefix_length=32)


@pytest.mark.django_db
def test_ipv6_prefixes_and_addresses_and_group_pools(node):
    group = NodeGroup.objects.create(name="rack1")
    group.nodes.add(node)
    prefixes = ippools.create_pool(name="v6-64s", family=6, network="2001:db8:100::/62", unit_prefix=64, group=group)
    singles = ippools.create_pool(name="v6-one", family=6, network="2001:db8:200::/64", unit_prefix=128, node=node)
    assert [ippools.allocate(prefixes).address for _ in range(4)] == [
        "2001:db8:100::", "2001:db8:100:1::", "2001:db8:100:2::", "2001:db8:100:3::"]
    assert IPAddress.objects.filter(pool=prefixes).first().prefix_length == 64
    assert ippools.allocate(singles).address == "2001:db8:200::1"
    assert ippools.pools_for(node, 6) == [singles, prefixes]
    with pytest.raises(ippools.PoolExhausted):
        ippools.allocate(prefixes)


@pytest.mark.django_db
def test_pools_are_validated(node):
    ippools.create_pool(name="a", family=4, network="203.0.113.0/25", node=node)
    with pytest.raises(ValidationError, match="Overlaps"):
        ippools.create_pool(name="b", family=4, network="203.0.113.64/26", node=node)
    with pytest.raises(ValidationError, match="Not an IPv6"):
        ippools.create_pool(name="c", family=6, network="203.0.113.128/25", unit_prefix=128, node=node)
    with pytest.raises(ValidationError, match="gateway"):
        ippools.create_pool(name="d", family=4, network="203.0.113.128/26", gateway="198.51.100.1", node=node)
    with pytest.raises(ValidationError):
        ippools.create_pool(name="e", family=4, network="203.0.113.192/26")  # neither node nor group
    assert IPPool.objects.count() == 1


@pytest.mark.django_db
def test_reverse_dns_is_validated_and_visible_to_its_customer_only(node):
    t = make_tenants()
    pool = ippools.create_pool(name="v4", family=4, network="198.51.100.0/28", node=node)
    address = ippools.allocate(pool, owner=t.customer1, assigned_to="vps:101")
    ippools.set_ptr(address, "vps101.example.com.")
    assert IPAddress.objects.get(pk=address.pk).ptr == "vps101.example.com"
    with pytest.raises(ValidationError):
        ippools.set_ptr(address, "bad name\nx")
    assert list(IPAddress.objects.restrict(t.customer1)) == [address]
    assert list(IPAddress.objects.restrict(t.reseller1)) == [address]
    assert not IPAddress.objects.restrict(t.customer2).exists()
    assert not IPAddress.objects.restrict(t.reseller2).exists()


def _allocate_many(pool, count, barrier, out, errors):
    try:
        barrier.wait(timeout=30)
        for _ in range(count):
            with transaction.atomic():
                out.append(ippools.allocate(pool).address)
    except Exception as exc:
        errors.append(exc)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_concurrent_allocations_never_hand_out_an_address_twice():
    node = Node.objects.create(name="n1")
    pool = ippools.create_pool(name="v4", family=4, network="203.0.113.0/26", node=node)
    barrier, out, errors = threading.Barrier(3), [], []
    threads = [threading.Thread(target=_allocate_many, args=(pool, 15, barrier, out, errors)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(out) == 45 and len(set(out)) == 45
    assert IPAddress.objects.filter(pool=pool).count() == 45
