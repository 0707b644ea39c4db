"""Compare what a node has with what the panel wants (DESIGN.md: reconcile).

`request_inventory` asks a node for its VPSs and orphans (and, with `clean`,
to remove the orphans). When the report arrives, `on_operation_reported`
records the differences in the operation's result under "drift":

- missing: the panel has the VPS on this node, the node does not;
- unmanaged: the node has a VPS the panel does not know (vzctl-made, node-local);
- state: the node's state differs from the panel's last known one (the panel
  takes the node's, and says whether that differs from the desired state);
- orphans: the node's kernel objects without a VPS (removed with `clean`);
- forced: changes made on the node with `vzctl --force` to VPSs the panel manages
  (command, time and what changed), each reported once.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from panel.core.dispatch import dispatch
from panel.core.models import Operation
from panel.core.permissions import is_admin
from panel.core.services import create_operation
from panel.nodes.models import Node
from panel.vps.choices import DesiredState, VpsState
from panel.vps.models import VPS
from worker import protocol

_FROM_NODE = {
    protocol.VpsState.RUNNING: VpsState.RUNNING,
    protocol.VpsState.STOPPED: VpsState.STOPPED,
    protocol.VpsState.PAUSED: VpsState.PAUSED,
}


def request_inventory(actor: Any, node: Node, *, clean: bool = False) -> Operation:
    if actor is not None and not is_admin(actor):
        raise PermissionDenied("Only admins reconcile nodes.")
    with transaction.atomic():
        op = create_operation(action=protocol.TASK_INVENTORY, node_name=node.name, user=actor,
                              target_type="node", target_id=node.name, payload={"clean": clean})
        dispatch(op, protocol.InventoryRequest(node=node.name, operation_id=str(op.id), clean=clean))
    return op


def drift(node_name: str, inventory: dict[str, Any]) -> dict[str, Any]:
    """Differences between the panel's VPSs on `node_name` and the node's inventory; updates known states."""
    on_node = {v["ctid"]: v for v in inventory.get("vpss", []) if isinstance(v, dict) and "ctid" in v}
    wanted = VPS.objects.select_for_update().filter(node__name=node_name).exclude(state=VpsState.DESTROYED)
    result: dict[str, Any] = {"missing": [], "unmanaged": [], "state": [], "orphans": inventory.get("orphans", {})}
    panel_ctids = set()
    for vps in wanted:
        panel_ctids.add(vps.ctid)
        seen = on_node.get(vps.ctid)
        if seen is None:
            if vps.state != VpsState.CREATING:
                result["missing"].append(vps.ctid)
            continue
        actual = _FROM_NODE.get(seen.get("state"))
        if actual is None:
            continue
        if actual != vps.state:
            result["state"].append({"ctid": vps.ctid, "panel": vps.state, "node": actual})
            vps.state, vps.init_pid, vps.state_changed = actual, seen.get("init_pid"), timezone.now()
            vps.save(update_fields=["state", "init_pid", "state_changed", "updated"])
        if vps.desired_state != DesiredState.ABSENT and actual != vps.desired_state and actual != VpsState.PAUSED:
            result.setdefault("not_as_desired", []).append(
                {"ctid": vps.ctid, "desired": vps.desired_state, "node": actual})
    result["unmanaged"] = sorted(set(on_node) - panel_ctids)
    result["forced"] = [entry for entry in inventory.get("forced", [])
                        if isinstance(entry, dict) and entry.get("ctid") in panel_ctids]
    return result


def on_operation_reported(sender: type, operation: Operation, **kwargs: object) -> None:
    if operation.action != protocol.TASK_INVENTORY or operation.status != protocol.Status.SUCCEEDED:
        return
    operation.result = {**operation.result, "drift": drift(operation.node_name, operation.result)}
    operation.save(update_fields=["result"])
