"""Where a new VPS goes when nobody names a node: the up node with the most free memory that has the template.

Free memory is the node's last heartbeat (`capacity["memory_available"]`)
minus the RAM of VPSs placed on it since that heartbeat, so a burst of
creates spreads over the nodes instead of piling onto the one that looked
emptiest. A node whose `facts["templates"]` is a list must list the
template; a node that does not report templates yet is accepted for any
template (the node then fails the create with `kernel.not_found` if it
lacks it).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import BigIntegerField, Q, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from panel.nodes.choices import NodeState
from panel.nodes.models import Node
from panel.vps.choices import VpsState


def has_template(node: Node, template: str) -> bool:
    templates = (node.facts or {}).get("templates")
    return not isinstance(templates, list) or template in templates


def free_memory(node: Node) -> int:
    """Memory available at the last heartbeat, less what VPSs placed since then will take."""
    available = (node.capacity or {}).get("memory_available")
    if isinstance(available, bool) or not isinstance(available, int):
        return 0
    since = Q(created__gt=node.last_seen) if node.last_seen else Q()
    pending = node.vpss.exclude(state=VpsState.DESTROYED).filter(since).aggregate(
        ram=Sum(Cast(KeyTextTransform("ram", "limits"), output_field=BigIntegerField())))["ram"] or 0
    return available - pending


def choose_node(template: str, ram: int = 0) -> Node:
    """The node for a new VPS needing `ram` bytes (0: any), or a ValidationError saying why none fits."""
    up = list(Node.objects.filter(state=NodeState.UP))
    if not up:
        raise ValidationError({"node": "No node is up to place the VPS on."}, code="no_node")
    with_template = [n for n in up if has_template(n, template)]
    if not with_template:
        raise ValidationError({"node": f"No node that is up has the template {template}."}, code="no_node")
    scored = sorted(((free_memory(n), n.name, n) for n in with_template), key=lambda t: (-t[0], t[1]))
    free, _, node = scored[0]
    if ram and free < ram:
        raise ValidationError({"node": f"No node has {ram} bytes of memory free for the VPS "
                                       f"(the most free is {max(free, 0)} on {node.name})."}, code="no_node")
    return node
