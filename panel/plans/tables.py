from django.urls import reverse

from panel.core.tables import BytesColumn, Column, RateColumn, Table

UNLIMITED = "unlimited"


def plan_url(plan) -> str:
    return reverse("plans:plan", args=[plan.pk])


def budget_url(budget) -> str:
    return reverse("plans:user-budget", args=[budget.grantee_id])


class PlanTable(Table):
    columns = [
        Column("name", link=plan_url),
        Column("owner__username", "Reseller", template="plans/cells/owner.html"),
        BytesColumn("ram", "RAM"),
        BytesColumn("diskspace", "Disk"),
        Column("cpus", "CPUs"),
        BytesColumn("traffic", "Traffic", zero="unlimited"),
        RateColumn("port_speed", "Port", zero="unlimited"),
        Column("ipv4_count", "IPv4"),
        Column("active", template="plans/cells/active.html"),
    ]
    default_order = "ram"
    empty_text = "No plans yet."


class BudgetTable(Table):
    columns = [
        Column("grantee__username", "Grantee", link=budget_url),
        Column("grantee__role", "Role", orderable=False),
        Column("vps_count", "VPSs", empty=UNLIMITED),
        BytesColumn("ram", "RAM", empty=UNLIMITED),
        BytesColumn("disk", "Disk", empty=UNLIMITED),
        Column("cpus", "CPUs", empty=UNLIMITED),
        Column("ipv4", "IPv4", empty=UNLIMITED),
        Column("ipv6_prefixes", "IPv6 /64", empty=UNLIMITED),
        BytesColumn("traffic", "Traffic", empty=UNLIMITED),
        Column("granted_by__username", "Granted by"),
        Column("updated"),
    ]
    default_order = "grantee__username"
    empty_text = "No budgets granted yet."
