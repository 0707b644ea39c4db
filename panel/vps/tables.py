from django.urls import reverse

from panel.core.tables import Column, Table


def vps_url(vps) -> str:
    return reverse("vps:vps", args=[vps.ctid])


class VPSTable(Table):
    columns = [
        Column("ctid", "ID", link=vps_url),
        Column("hostname", "Host name", link=vps_url),
        Column("state", template="vps/cells/state.html"),
        Column("addresses", "Addresses", orderable=False, template="vps/cells/addresses.html"),
        Column("plan__name", "Plan"),
        Column("customer__username", "Customer"),
        Column("node__name", "Node"),
        Column("template"),
        Column("created"),
    ]
    default_order = "ctid"
    empty_text = "No VPSs yet."
