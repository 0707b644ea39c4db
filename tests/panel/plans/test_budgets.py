import threading

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from panel.plans import budgets
from panel.plans.budgets import BudgetExceeded, Demand
from panel.plans.models import Allocation
from tests.panel.tenants import make_tenants

pytestmark = pytest.mark.integration
GiB = 2**30


def demand(ram: int = GiB, **kw) -> Demand:
    return Demand(vps_count=1, ram=ram, disk=10 * GiB, cpus=1, ipv4=1, **kw)


@pytest.mark.django_db
def test_reserve_within_budgets_and_the_error_names_the_resource():
    t = make_tenants()
    budgets.grant(t.admin, t.reseller1, vps_count=3, ram=3 * GiB, disk=None, cpus=8, ipv4=8, ipv6_prefixes=0,
                  traffic=None)
    budgets.reserve(t.customer1, "vps:1", demand())
    budgets.reserve(t.customer1b, "vps:2", demand())
    with pytest.raises(BudgetExceeded) as excinfo:
        budgets.reserve(t.customer1, "vps:3", demand(ram=2 * GiB))
    assert excinfo.value.resource == "ram" and excinfo.value.level == "reseller"
    assert "RAM budget of reseller reseller1 exhausted: 2147483648 of 3221225472" in str(excinfo.value)
    assert budgets.allocated(t.reseller1)["ram"] == 2 * GiB
    assert budgets.allocated(t.customer1)["vps_count"] == 1

    # a customer budget below the reseller's applies too
    budgets.grant(t.reseller1, t.customer1, vps_count=1, ram=GiB, disk=20 * GiB, cpus=1, ipv4=1)
    with pytest.raises(BudgetExceeded) as excinfo:
        budgets.reserve(t.customer1, "vps:4", demand(ram=1))
    assert (excinfo.value.resource, excinfo.value.level) == ("vps_count", "customer")

    # resizing the same holder counts only its growth; shrinking always works
    budgets.reserve(t.customer1b, "vps:2", demand(ram=2 * GiB))
    budgets.grant(t.admin, t.reseller1, ram=GiB)
    budgets.reserve(t.customer1b, "vps:2", demand(ram=GiB // 2))
    assert Allocation.objects.get(holder="vps:2").ram == GiB // 2

    assert budgets.release("vps:1") and not budgets.release("vps:1")
    assert budgets.allocated(t.reseller1)["vps_count"] == 1


@pytest.mark.django_db
def test_a_reseller_without_a_budget_allocates_nothing_and_admin_customers_are_free():
    t = make_tenants()
    with pytest.raises(BudgetExceeded, match="has no budget for VPS count"):
        budgets.reserve(t.customer2, "vps:9", demand())
    budgets.reserve(t.customer0, "vps:10", demand(ram=64 * GiB))  # the admin's own customer, no budget
    with pytest.raises(ValidationError, match="another customer"):
        budgets.reserve(t.customer1, "vps:10", demand())


@pytest.mark.django_db
def test_who_may_grant_what():
    t = make_tenants()
    with pytest.raises(PermissionDenied):
        budgets.grant(t.reseller1, t.reseller1, ram=10 * GiB)
    with pytest.raises(PermissionDenied):
        budgets.grant(t.reseller2, t.customer1, ram=GiB)
    budgets.grant(t.admin, t.reseller1, ram=4 * GiB, vps_count=None)
    with pytest.raises(ValidationError, match="At most the reseller's own budget"):
        budgets.grant(t.reseller1, t.customer1, ram=8 * GiB)
    budget = budgets.grant(t.reseller1, t.customer1, ram=2 * GiB, vps_count=50)
    assert budget.granted_by == t.reseller1 and budget.disk == 0


def _reserve_in_thread(customer, holder, barrier, results):
    try:
        barrier.wait(timeout=30)
        budgets.reserve(customer, holder, demand())
        results.append("ok")
    except BudgetExceeded as exc:
        results.append(exc.resource)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("same_customer", [True, False])
def test_two_concurrent_reservations_for_the_last_unit_exactly_one_wins(same_customer):
    """Real transactions on two connections: the reseller row lock serialises them."""
    t = make_tenants()
    budgets.grant(t.admin, t.reseller1, vps_count=2, ram=None, disk=None, cpus=None, ipv4=None)
    budgets.reserve(t.customer1, "vps:100", demand())
    others = (t.customer1, t.customer1 if same_customer else t.customer1b)
    for _ in range(5):
        barrier, results = threading.Barrier(2), []
        threads = [threading.Thread(target=_reserve_in_thread, args=(c, f"vps:{i}", barrier, results))
                   for i, c in zip((101, 102), others, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(results) == ["ok", "vps_count"]
        assert Allocation.objects.filter(reseller=t.reseller1).count() == 2
        Allocation.objects.exclude(holder="vps:100").delete()
