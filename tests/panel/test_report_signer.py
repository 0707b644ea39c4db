"""The real panel worker takes a node's report only when the node it names signed it: node a's valid key
signing a report (or heartbeat) that names node b is refused, logged, and changes nothing."""

from __future__ import annotations

import pytest
from celery.security.certificate import Certificate
from celery.security.key import PrivateKey
from celery.security.serialization import SecureSerializer
from django.utils import timezone
from kombu.serialization import registry

from panel.celery import app as panel_app
from panel.core.models import Operation
from panel.core.services import create_operation
from panel.core.signing import SIGNED_CONTENT_TYPE
from panel.nodes import services as nodes
from panel.nodes.models import Node
from tests.services import terminal, wait_for
from worker import protocol

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sign_as(stack):
    """Send to the panel queue signed with node NAME's own key (its certificate trusted by the panel worker)."""
    registered: list[str] = []
    names = dict(registry.type_to_name)

    def send(node: str, task: str, body: dict) -> None:
        env = stack.node_keys(node)
        with open(env["CTPANEL_SIGNING_KEY"]) as key, open(env["CTPANEL_SIGNING_CERT"]) as cert:
            serializer = SecureSerializer(PrivateKey(key.read()), Certificate(cert.read()), None, "sha256")
        name = f"signed-by-{node}"
        # Only an encoder of our own: the registry keeps the panel's decoder for the content type.
        registry.register(name, serializer.serialize, registry._decoders[SIGNED_CONTENT_TYPE],
                          content_type=SIGNED_CONTENT_TYPE, content_encoding="utf-8")
        registered.append(name)
        panel_app.send_task(task, args=[body], queue=stack.panel_env["CTPANEL_PANEL_QUEUE"], serializer=name)

    yield send
    for name in registered:
        registry._encoders.pop(name, None)
        registry.name_to_type.pop(name, None)
    registry.type_to_name.clear()
    registry.type_to_name.update(names)


def test_a_report_signed_by_another_nodes_key_is_refused(stack, sign_as):
    node_a, node_b = f"{stack.node_name}-sa", f"{stack.node_name}-sb"
    for name in (node_a, node_b):
        nodes.register_node(name)
    op = create_operation(action=protocol.TASK_PING, node_name=node_b)
    report = protocol.Report(operation_id=str(op.id), node=node_b, status=protocol.Status.SUCCEEDED,
                             facts={"kernel": "forged"}).to_dict()
    log = stack.processes["panel-worker"]
    refusals = log.log().count("(protocol.misrouted)")

    sign_as(node_a, protocol.TASK_APPLY_REPORT, report)
    sign_as(node_a, protocol.TASK_NODE_HEARTBEAT,
            protocol.Heartbeat(node=node_b, sent_at=timezone.now().timestamp()).to_dict())
    wait_for(lambda: log.log().count("(protocol.misrouted)") >= refusals + 2, 30, "the panel worker's refusals")
    assert f"a message naming node '{node_b}' was signed by node {node_a}'s certificate" in log.log()
    op.refresh_from_db()
    assert (op.status, op.result) == ("pending", {})
    assert Node.objects.get(name=node_b).last_seen is None

    # The same report signed by node b's own key is applied (the refusal above was the signer, nothing else).
    sign_as(node_b, protocol.TASK_APPLY_REPORT, report)
    op = terminal(Operation.objects.get(pk=op.pk))
    assert (op.status, op.result) == ("succeeded", {"kernel": "forged"})
