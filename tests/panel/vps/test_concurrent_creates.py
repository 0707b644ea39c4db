"""Concurrent creates in two real processes against the real PostgreSQL.

Each create runs in a forked process with its own database connection. The
test holds the allocations table (EXCLUSIVE: reads pass, row locks wait) and
starts both; it lets them go only once both wait on a lock inside their
create transactions, so both have read what they check before either
commits: the race happens on every run instead of now and then.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections, transaction
from django.test import Client
from django.utils import timezone

from panel.accounts import services as accounts
from panel.accounts.choices import TokenScope
from panel.nodes import ippools
from panel.nodes.choices import NodeState
from panel.nodes.models import Node
from panel.plans import budgets
from panel.plans import services as plans
from panel.plans.models import Allocation
from panel.vps import services
from panel.vps.models import VPS, IdempotencyKey
from tests.panel.locks import backend_pid, waiting
from tests.panel.tenants import make_tenants
from tests.services import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
GIB = 2**30
NODE = "conc1"  # operations are dispatched to this node's queue, which no worker reads
UNLIMITED = {"ram": None, "disk": None, "cpus": None, "ipv4": None, "ipv6_prefixes": None, "traffic": None}


def _child(work: Callable[..., Any], args: tuple, backends: Any, go: Any, results: Any) -> None:
    backends.put(backend_pid())
    go.wait(60)
    try:
        results.put(work(*args))
    except Exception as exc:  # the parent reports whatever the child met
        results.put(("error", repr(exc)))
    finally:
        connections.close_all()


def race(work: Callable[..., Any], *arg_sets: tuple) -> list[Any]:
    """Run `work(*args)` for each arg set in its own process, all inside their transactions at once."""
    ctx = multiprocessing.get_context("fork")
    connections.close_all()  # a child must not share the parent's connection
    backends, go, results = ctx.Queue(), ctx.Event(), ctx.Queue()
    children = [ctx.Process(target=_child, args=(work, args, backends, go, results)) for args in arg_sets]
    for child in children:
        child.start()
    try:
        pids = [backends.get(timeout=60) for _ in children]
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {Allocation._meta.db_table} IN EXCLUSIVE MODE")
            go.set()
            # (a child that answers before that met an error: its answer says which)
            wait_for(lambda: waiting(pids) == len(children) or not results.empty(), 60,
                     "both creates to wait on a lock")
        answers = [results.get(timeout=60) for _ in children]
    finally:
        for child in children:
            child.join(timeout=60)
    assert [child.exitcode for child in children] == [0] * len(children)
    return answers


@pytest.fixture
def world():
    t = make_tenants()
    node = Node.objects.create(name=NODE, state=NodeState.UP, last_seen=timezone.now(),
                               capacity={"memory_available": 64 * GIB}, facts={"templates": ["busybox"]})
    ippools.create_pool(name="v4", family=4, network="198.51.100.0/24", node=node)
    plan = plans.create_plan(t.admin, name="small", ram=GIB, ipv4_count=1, ipv6_count=0)
    return t, plan


def create_by_service(actor_pk: int, customer_pk: int, plan_pk: int, hostname: str) -> tuple[str, Any]:
    from panel.accounts.models import User
    from panel.plans.models import Plan

    try:
        vps, _op = services.create_vps(User.objects.get(pk=actor_pk), customer=User.objects.get(pk=customer_pk),
                                       template="busybox", hostname=hostname, plan=Plan.objects.get(pk=plan_pk))
    except budgets.BudgetExceeded as exc:
        return "refused", exc.resource
    except ValidationError as exc:
        return "invalid", exc.messages
    return "created", vps.ctid


def test_two_creates_for_the_resellers_last_vps_exactly_one_succeeds(world):
    t, plan = world
    budgets.grant(t.admin, t.reseller1, vps_count=1, **UNLIMITED)
    answers = race(create_by_service, (t.reseller1.pk, t.customer1.pk, plan.pk, "one"),
                   (t.reseller1.pk, t.customer1b.pk, plan.pk, "two"))
    assert sorted(kind for kind, _ in answers) == ["created", "refused"], answers
    assert ("refused", "vps_count") in answers
    created = next(ctid for kind, ctid in answers if kind == "created")
    assert list(VPS.objects.values_list("ctid", flat=True)) == [created]  # the loser's row was rolled back
    assert Allocation.objects.filter(reseller=t.reseller1).count() == 1


def create_by_api(secret: str, body: dict, key: str) -> tuple[int, dict]:
    response = Client().post("/api/vps/vps/", body, content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_IDEMPOTENCY_KEY=key)
    return response.status_code, response.json()


def test_two_concurrent_creates_with_one_idempotency_key_make_one_vps_and_both_answer_it(world):
    t, plan = world
    budgets.grant(t.admin, t.reseller1, vps_count=10, **UNLIMITED)
    _token, secret = accounts.create_token(t.customer1, name="billing", scope=TokenScope.WRITE)
    body = {"plan": plan.pk, "template": "busybox", "hostname": "billed"}
    answers = race(create_by_api, (secret, body, "order-77"), (secret, body, "order-77"))
    assert [status for status, _ in answers] == [201, 201], answers
    vps = VPS.objects.get()
    assert {data["ctid"] for _, data in answers} == {vps.ctid}
    assert {data["operation"] for _, data in answers} == {str(IdempotencyKey.objects.get().operation_id)}
    assert Allocation.objects.count() == 1
