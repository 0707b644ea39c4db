from typing import Any

from django.db import transaction

from panel.core.dispatch import dispatch
from panel.core.models import Operation
from panel.core.services import create_operation
from panel.nodes.models import Node
from worker import protocol


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
