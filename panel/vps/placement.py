"""Where a new VPS goes when nobody names a node: the up node with the most free memory that has the template.

Free memory is the node's last heartbeat (`capacity["memory_available"]`)
minus the RAM of VPSs placed on it since that heartbeat, so a burst of
creates spreads over the nodes instead of piling onto the one that looked
emptiest. A node whose `facts["templates"]` is a list must list the
template; a node that does not report templates yet is accepted for any
template (the node then fails the create with `kernel.not_found` if it
lacks it). A node that reports the free disk of its default pool
(`capacity["pools"]`, since protocol 1.4) must have at least the VPS's
disk limit free there.
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


def template_info(node: Node, template: str) -> tuple[str, str]:
    """(version, checksum) of `template` as the node last reported it (protocol 1.4); ("", "") when it did not:
    the node then takes whatever it has."""
    info = ((node.facts or {}).get("template_info") or {}).get(template)
    if not isinstance(info, dict):
        return "", ""
    version, checksum = info.get("version"), info.get("checksum")
    return (version if isinstance(version, str) else "", checksum if isinstance(checksum, str) else "")


def free_memory(node: Node) -> int:
    """Memory available at the last heartbeat, less what VPSs placed since then will take."""
    available = (node.capacity or {}).get("memory_available")
    if isinstance(available, bool) or not isinstance(available, int):
        return 0
    since = Q(created__gt=node.last_seen) if node.last_seen else Q()
    pending = node.vpss.exclude(state=VpsState.DESTROYED).filter(since).aggregate(
        ram=Sum(Cast(KeyTextTransform("ram", "limits"), output_field=BigIntegerField())))["ram"] or 0
    return available - pending


def free_disk(node: Node) -> int | None:
    """Free bytes in the node's default pool at the last heartbeat; None when the node does not say."""
    default = ((node.facts or {}).get("storage") or {}).get("default")
    free = ((node.capacity or {}).get("pools") or {}).get(default, {}).get("free") if isinstance(default, str) else None
    return free if isinstance(free, int) and not isinstance(free, bool) else None


def choose_node(template: str, ram: int = 0, disk: int = 0) -> Node:
    """The node for a new VPS needing `ram` bytes and `disk` bytes of disk (0: any), or a ValidationError
    saying why none fits."""
    up = list(Node.objects.filter(state=NodeState.UP))
    if not up:
        raise ValidationError({"node": "No node is up to place the VPS on."}, code="no_node")
    with_template = [n for n in up if has_template(n, template)]
    if not with_template:
        raise ValidationError({"node": f"No node that is up has the template {template}."}, code="no_node")
    if disk:
        roomy = [n for n in with_template if (free_disk(n) is None or free_disk(n) >= disk)]
        if not roomy:
            most = max(with_template, key=lambda n: free_disk(n) or 0)
            raise ValidationError({"node": f"No node has {disk} bytes of disk free for the VPS (the most free is "
                                           f"{free_disk(most)} on {most.name})."}, code="no_node")
        with_template = roomy
    scored = sorted(((free_memory(n), n.name, n) for n in with_template), key=lambda t: (-t[0], t[1]))
    free, _, node = scored[0]
    if ram and free < ram:
        raise ValidationError({"node": f"No node has {ram} bytes of memory free for the VPS "
                                       f"(the most free is {max(free, 0)} on {node.name})."}, code="no_node")
    return node
