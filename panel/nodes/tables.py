from django.urls import reverse
from django.utils.html import format_html

from panel.core.choices import OperationStatus
from panel.core.tables import Column, Table


def node_url(node) -> str:
    return reverse("nodes:node", args=[node.name])


def pool_url(pool) -> str:
    return reverse("nodes:pool", args=[pool.pk])


class LastPingColumn(Column):
    """The node's last ping from the list's annotations (last_ping_status, _ms, _error)."""

    def render(self, record):
        status = getattr(record, "last_ping_status", None)
        if status is None:
            return "never"
        text = OperationStatus(status).label
        if record.last_ping_ms is not None:
            text += f" in {record.last_ping_ms} ms"
        if record.last_ping_error:
            text += f": {record.last_ping_error}"
        return format_html('<span class="ping-status">{}</span>', text)


class NodeTable(Table):
    columns = [
        Column("name", link=node_url),
        Column("state", template="nodes/cells/state.html"),
        Column("last_seen", "Heartbeat", template="nodes/cells/heartbeat.html"),
        Column("capacity", "CPUs", orderable=False, template="nodes/cells/cpus.html"),
        Column("capacity", "Memory free", orderable=False, template="nodes/cells/memory.html"),
        Column("capacity", "Load", orderable=False, template="nodes/cells/load.html"),
        Column("capacity", "VPSs", orderable=False, template="nodes/cells/vps_count.html"),
        LastPingColumn("last_ping_status", "Last ping", orderable=False),
        Column("name", "", orderable=False, template="nodes/cells/ping.html"),
    ]
    default_order = "name"
    empty_text = "No nodes yet. Register one with: manage.py register_node NAME"


class PoolTable(Table):
    columns = [
        Column("name", link=pool_url),
        Column("family"),
        Column("network", template="nodes/cells/code.html"),
        Column("gateway"),
        Column("unit_prefix", "Hands out", template="nodes/cells/unit.html"),
        Column("node__name", "Node"),
        Column("group__name", "Node group"),
        Column("used", "Allocated", orderable=True),
        Column("active", template="plans/cells/active.html"),
    ]
    default_order = "name"
    empty_text = "No IP pools yet."


class AddressTable(Table):
    columns = [
        Column("address", template="nodes/cells/address.html"),
        Column("owner__username", "Customer"),
        Column("assigned_to", "Assigned to"),
        Column("ptr", "Reverse DNS"),
        Column("allocated"),
    ]
    default_order = "address"
    empty_text = "Nothing allocated from this pool."

