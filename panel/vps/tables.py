from django.urls import reverse

from panel.core.tables import Column, Table


def operation_url(operation) -> str:
    return reverse("vps:operation", args=[operation.target_id, operation.pk])


def vps_url(vps) -> str:
    return reverse("vps:vps", args=[vps.ctid])


class VPSTable(Table):
    columns = [
        Column("ctid", "ID", link=vps_url),
        Column("hostname", "Host name", link=vps_url),
        Column("state", template="vps/cells/state.html"),
        Column("addresses", "Addresses", orderable=False, template="vps/cells/addresses.html", nowrap=True),
        Column("plan__name", "Plan"),
        Column("customer__username", "Customer"),
        Column("node__name", "Node", nowrap=True),
        Column("template"),
        Column("created"),
    ]
    default_order = "ctid"
    empty_text = "No VPSs yet."


class VPSOperationTable(Table):
    """One VPS's operations, linked to their page under the VPS (viewable by whoever may view the VPS)."""

    columns = [
        Column("created", "Started", link=operation_url),
        Column("action"),
        Column("user__username", "By"),
        Column("status", template="core/cells/status.html"),
        Column("percent", "Progress", template="core/cells/progress.html"),
        Column("duration_ms", "Took", template="core/cells/duration.html"),
    ]
    default_order = "-created"
    empty_text = "No operations yet."
