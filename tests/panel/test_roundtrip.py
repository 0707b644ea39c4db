"""Panel → node → panel through real Redis and real Celery worker processes."""

from __future__ import annotations

import base64

import pytest
from celery import Celery
from kombu.serialization import dumps, registry

from panel.celery import app as panel_app
from panel.core.models import Operation
from panel.core.services import create_operation
from panel.nodes import services
from panel.nodes.models import Node
from tests.services import terminal
from worker import protocol

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def node(stack) -> Node:
    node, _ = services.register_node(stack.node_name)
    return node


def unsigned_app(broker_url: str) -> Celery:
    """A Celery client without the panel's key: sends plain JSON."""
    app = Celery("intruder", broker=broker_url, set_as_current=False)
    app.conf.task_serializer = "json"
    return app


def test_ping_round_trip(node, stack):
    op = terminal(services.ping(node))

    assert op.status == "succeeded", op.error_message
    assert op.result["kernel"]
    assert op.duration_ms is not None
    assert op.dispatched_at and op.finished_at


def new_operation(node: Node) -> Operation:
    return create_operation(action=protocol.TASK_PING, node_name=node.name)


def test_unsigned_message_is_refused_and_reported(node, stack):
    op = new_operation(node)
    body = protocol.PingRequest(node=node.name, operation_id=str(op.id)).to_dict()
    intruder = unsigned_app(stack.node_env["CTPANEL_BROKER_URL"])
    intruder.send_task(protocol.TASK_PING, args=[body], task_id=str(op.id), queue=node.queue)

    op = terminal(op)
    assert op.status == "failed"
    assert op.error_code == protocol.ErrorCode.PROTOCOL_UNTRUSTED
    assert "was not signed" in op.error_message
    assert "Refusing to deserialize untrusted content" in stack.processes["node-worker"].log()
    assert op.result == {}


@pytest.fixture
def tampering_serializer():
    """'auth' output with one byte of the signed body changed afterwards."""
    auth_decoder = registry._decoders["application/data"]

    def tampered(data):
        _, _, payload = dumps(data, serializer="auth")
        raw = base64.b64decode(payload)
        head, body = raw.rsplit(b"\x00\x01", 1)
        altered = body.replace(b'"delay_ms": 0', b'"delay_ms": 1')
        assert altered != body, "nothing to alter in the body"
        return base64.b64encode(head + b"\x00\x01" + altered)

    registry.register("tampered", tampered, auth_decoder, content_type="application/data",
                      content_encoding="utf-8")
    yield "tampered"
    registry._encoders.pop("tampered", None)


def test_altered_signed_message_is_refused(node, stack, tampering_serializer):
    op = new_operation(node)
    body = protocol.PingRequest(node=node.name, operation_id=str(op.id)).to_dict()
    panel_app.send_task(protocol.TASK_PING, args=[body], task_id=str(op.id), queue=node.queue,
                        serializer=tampering_serializer)

    op = terminal(op)
    assert op.error_code == protocol.ErrorCode.PROTOCOL_UNTRUSTED
    assert "signature did not verify" in op.error_message


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"node": "another-node"}, protocol.ErrorCode.PROTOCOL_MISROUTED),
        ({"task": "node.destroy"}, protocol.ErrorCode.PROTOCOL_MISROUTED),
        ({"operation_id": "00000000-0000-4000-8000-000000000000"}, protocol.ErrorCode.PROTOCOL_MISROUTED),
        ({"schema": "2.0"}, protocol.ErrorCode.PROTOCOL_SCHEMA),
        ({"schema": None}, protocol.ErrorCode.PROTOCOL_INVALID),
    ],
)
def test_signed_but_wrong_request_fails_with_its_code(node, stack, change, code):
    op = new_operation(node)
    body = {**protocol.PingRequest(node=node.name, operation_id=str(op.id)).to_dict(), **change}
    panel_app.send_task(protocol.TASK_PING, args=[body], task_id=str(op.id), queue=node.queue)

    op = terminal(op)
    assert (op.status, op.error_code) == ("failed", code)
    assert op.error_message
