import datetime
import logging
from typing import Any

from django.db import transaction
from django.db.models import DurationField, ExpressionWrapper, F
from django.utils import timezone

from panel.core.dispatch import dispatch
from panel.core.models import Operation
from panel.core.services import create_operation
from panel.nodes.choices import NodeState
from panel.nodes.models import Node
from worker import protocol

log = logging.getLogger(__name__)


def register_node(name: str, description: str = "") -> tuple[Node, bool]:
    protocol.validate_node_name(name)
    node, created = Node.objects.get_or_create(name=name, defaults={"description": description})
    return node, created


def ping(node: Node, user: Any = None) -> Operation:
    """Ask a node to answer; the operation succeeds when its report arrives."""
    with transaction.atomic():
        op = create_operation(action=protocol.TASK_PING, node_name=node.name, user=user,
                              target_type="node", target_id=node.name)
        dispatch(op, protocol.PingRequest(node=node.name, operation_id=str(op.id)))
    return op


def record_heartbeat(heartbeat: protocol.Heartbeat) -> bool:
    """A registered node is up and has these facts; unknown nodes are not created."""
    updated = Node.objects.filter(name=heartbeat.node).exclude(state=NodeState.DISABLED).update(
        state=NodeState.UP,
        last_seen=timezone.now(),
        facts=heartbeat.facts,
        capacity=heartbeat.capacity,
        heartbeat_interval=max(1, heartbeat.interval),
    )
    if not updated and not Node.objects.filter(name=heartbeat.node).exists():
        log.warning("heartbeat from unregistered node %s; register it with manage.py register_node",
                    heartbeat.node)
    return bool(updated)


def sweep_down_nodes(now: datetime.datetime | None = None) -> list[str]:
    """Mark nodes down that missed HEARTBEAT_MISSED_DOWN heartbeats in a row."""
    now = now or timezone.now()
    silence = ExpressionWrapper(
        F("heartbeat_interval") * datetime.timedelta(seconds=protocol.HEARTBEAT_MISSED_DOWN),
        output_field=DurationField(),
    )
    stale = Node.objects.filter(state=NodeState.UP).alias(silence=silence).filter(last_seen__lt=now - F("silence"))
    names = list(stale.values_list("name", flat=True))
    if names:
        Node.objects.filter(name__in=names, state=NodeState.UP).update(state=NodeState.DOWN)
        log.warning("nodes down (no heartbeat): %s", ", ".join(names))
    return names
