"""Schemathesis over the whole API as each role: no 5xx, and every documented answer matches the schema."""

from __future__ import annotations

import datetime
import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from panel.accounts import services as accounts
from panel.nodes.models import Node
from panel.usage.tasks import usage_batch
from panel.vps import services
from tests.panel.api.world import build_world
from tests.panel.usage.world import T0, batch, physpages, sample

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
EXAMPLES = 5


def api_schema() -> schemathesis.openapi.OpenApiSchema:
    raw = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    schema = schemathesis.openapi.from_dict(raw)
    schema.app = get_wsgi_application()
    return schema


@pytest.fixture
def keep_connection():
    """Requests through the WSGI app must not close the test's connection (Django's test client does the same)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.mark.parametrize("role", ["admin", "reseller1", "customer1"])
def test_no_server_errors_and_no_schema_violations(role, keep_connection):
    world = build_world()
    for customer in (world.t.customer1, world.t.customer2):  # VPSs with usage, so lists have rows to check
        vps, _ = services.create_vps(world.t.admin, customer=customer, node=Node.objects.get(name="n1"),
                                     template="busybox", hostname=f"fuzz-{customer.pk}", limits={"ram": 2**30})
        usage_batch(batch("n1", T0, sample(vps, beancounters=physpages(0))))
        usage_batch(batch("n1", T0 + datetime.timedelta(minutes=1), sample(vps, cpu_s=9, rx=10**6,
                                                                           beancounters=physpages(2))))
    _token, secret = accounts.create_token(getattr(world.t, role), name="fuzz", scope="write")
    headers = {"Authorization": f"Bearer {secret}"}
    failures = []
    for result in api_schema().get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call(headers=headers)
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance,
                                                     content_type_conformance])

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}: {str(exc)[:400]}")
    assert failures == []
