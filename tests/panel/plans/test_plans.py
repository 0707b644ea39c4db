import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from panel.plans import services
from panel.plans.models import Plan
from panel.plans.samples import load_samples, samples_path
from tests.panel.tenants import make_tenants
from worker import protocol

GB = 10**9


def test_the_mapping_covers_every_protocol_limit():
    assert set(services.LIMIT_FIELDS) == set(protocol.LIMITS)
    plan_fields = {f.name for f in Plan._meta.fields}
    assert set(services.LIMIT_FIELDS.values()) <= plan_fields


def test_plan_limits_are_valid_protocol_limits_in_protocol_units():
    plan = Plan(name="p", ram=512 * 2**20, swap=2**30, diskspace=10 * GB, diskinodes=100_000, cpus=2, cpulimit=150,
                cpuunits=1000, numproc=300, numfile=4096, iolimit=50 * 2**20, iopslimit=500, port_speed=100 * 10**6)
    limits = services.plan_limits(plan)
    assert protocol.check_limits(limits) == limits
    assert limits["ram"] == 512 * 2**20 and limits["diskspace"] == 10 * GB
    assert limits["rate_in"] == limits["rate_out"] == 100_000_000
    assert limits["cpus"] == 2 and limits["cpulimit"] == 150


def test_samples_file_is_complete_and_checked(tmp_path):
    samples = load_samples()
    assert list(samples) == ["vswap-256m", "vswap-512m", "vswap-1g", "vswap-2g", "vswap-4g"]
    broken = json.loads(samples_path().read_text())
    del broken["samples"]["vswap-1g"]["limits"]["numproc"]
    (tmp_path / "s.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="numproc"):
        load_samples(tmp_path / "s.json")


@pytest.mark.integration
@pytest.mark.django_db
def test_seeded_plans_carry_exactly_the_samples_limits():
    """The data migration seeded the vswap family; their limits are the file's, so node samples agree."""
    for name, sample in load_samples().items():
        plan = Plan.objects.get(name=name, owner=None)
        assert services.plan_limits(plan) == sample["limits"]
        assert plan.traffic == sample["plan"]["traffic"]


@pytest.mark.integration
@pytest.mark.django_db
def test_who_creates_and_sees_which_plans():
    t = make_tenants()
    own = services.create_plan(t.reseller1, name="r1-small", ram=2**30, diskspace=10 * GB)
    assert own.owner == t.reseller1
    with pytest.raises(PermissionDenied):
        services.create_plan(t.reseller1, name="sneaky", owner=t.reseller2)
    with pytest.raises(PermissionDenied):
        services.create_plan(t.customer1, name="mine")
    with pytest.raises(ValidationError):
        services.create_plan(t.reseller1, name="r1-small")  # same name twice for one owner
    services.create_plan(t.reseller2, name="r1-small")  # another owner may reuse it

    assert set(Plan.objects.restrict(t.customer1).values_list("owner", flat=True)) == {None, t.reseller1.pk}
    assert set(Plan.objects.restrict(t.customer2).values_list("owner", flat=True)) == {None, t.reseller2.pk}
    assert set(Plan.objects.restrict(t.customer0).values_list("owner", flat=True)) == {None}
    assert not Plan.objects.restrict(t.reseller1, "change").filter(owner=None).exists()
    assert list(Plan.objects.restrict(t.reseller1, "change")) == [own]
    own.active = False
    own.save()
    assert not Plan.objects.restrict(t.customer1).filter(pk=own.pk).exists()
