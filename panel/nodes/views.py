from django.db.models import Count, OuterRef, Subquery
from django.shortcuts import render
from django.urls import reverse

from panel.accounts.choices import Role
from panel.core import views as generic
from panel.core.models import Operation
from panel.nodes import filtersets, ippools, services
from panel.nodes.forms import IPPoolForm
from panel.nodes.models import IPAddress, IPPool, Node
from panel.nodes.tables import AddressTable, NodeTable, PoolTable
from worker import protocol

ADMIN = (Role.ADMIN,)


def _last_ping(field: str) -> Subquery:
    pings = Operation.objects.filter(target_type="node", target_id=OuterRef("name"), action=protocol.TASK_PING)
    return Subquery(pings.order_by("-created").values(field)[:1])


class NodeListView(generic.ObjectListView):
    """Nodes with their heartbeat; the table refreshes itself (htmx polling, docs/DESIGN.md)."""

    roles = ADMIN
    queryset = Node.objects.all()
    table = NodeTable
    filterset = filtersets.NodeFilterSet
    poll = 5

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            last_ping_status=_last_ping("status"), last_ping_ms=_last_ping("duration_ms"),
            last_ping_error=_last_ping("error_message"))


class TemplateListView(generic.PanelView):
    """The OS templates the nodes report in their heartbeats, and which nodes have each (placement
    puts a VPS only on a node that has its template)."""

    roles = ADMIN

    def get(self, request):
        nodes = list(Node.objects.order_by("name"))
        found: dict[str, list[dict]] = {}
        for node in nodes:
            templates = (node.facts or {}).get("templates")
            info = (node.facts or {}).get("template_info")  # since protocol 1.4: version and checksum
            for name in templates if isinstance(templates, list) else ():
                if isinstance(name, str):
                    meta = info.get(name) if isinstance(info, dict) else None
                    found.setdefault(name, []).append({"node": node, **(meta if isinstance(meta, dict) else {})})
        rows = [{"name": name, "nodes": found[name],
                 "missing": [n for n in nodes if n not in {e["node"] for e in found[name]}]}
                for name in sorted(found)]
        return render(request, "nodes/templates.html", {"rows": rows, "nodes": nodes})


class NodeView(generic.ObjectView):
    roles = ADMIN
    queryset = Node.objects.all()
    template_name = "nodes/node.html"
    partial_template = "nodes/node_state.html"

    def get_extra_context(self, request, obj=None, **kwargs):
        return {"operations": Operation.objects.filter(node_name=obj.name).select_related("user")[:10],
                "pools": IPPool.objects.filter(node=obj), **node_facts(obj)}


def node_facts(node: Node) -> dict:
    """The heartbeat's facts for the node page: plain ones as they are, storage pools with their disk
    space (protocol 1.4) and the capabilities."""
    facts = node.facts if isinstance(node.facts, dict) else {}
    space = (node.capacity or {}).get("pools") if isinstance(node.capacity, dict) else None
    storage = facts.get("storage") if isinstance(facts.get("storage"), dict) else {}
    disks = []
    for pool in storage.get("pools") or ():
        if isinstance(pool, dict) and isinstance(pool.get("name"), str):
            numbers = space.get(pool["name"]) if isinstance(space, dict) else None
            disks.append({"name": pool["name"], "driver": pool.get("driver", ""),
                          "default": pool["name"] == storage.get("default"),
                          **(numbers if isinstance(numbers, dict) else {})})
    caps = facts.get("capabilities") if isinstance(facts.get("capabilities"), dict) else {}
    return {"plain_facts": {k: v for k, v in facts.items() if not isinstance(v, (dict, list))},
            "templates": sorted(facts.get("template_info") or {}) if isinstance(facts.get("template_info"), dict)
            else facts.get("templates") if isinstance(facts.get("templates"), list) else [],
            "disks": disks, "capabilities": caps}


class NodePingView(generic.ObjectActionView):
    roles = ADMIN
    queryset = Node.objects.all()

    def perform(self, request, obj):
        services.ping(obj, user=request.user)
        return f"Ping sent to {obj.name}."

    def post(self, request, **kwargs):
        self.success_url = reverse("nodes:list")
        return super().post(request, **kwargs)


class PoolListView(generic.ObjectListView):
    roles = ADMIN
    queryset = IPPool.objects.select_related("node", "group").annotate(used=Count("addresses"))
    table = PoolTable
    filterset = filtersets.IPPoolFilterSet
    add_url = "nodes:pool-add"
    title = "IP pools"


class PoolView(generic.ObjectView):
    roles = ADMIN
    queryset = IPPool.objects.select_related("node", "group")
    template_name = "nodes/pool.html"

    def get_extra_context(self, request, obj=None, **kwargs):
        addresses = IPAddress.objects.restrict(request.user).filter(pool=obj).select_related("owner")
        used = addresses.count()
        return {"table": AddressTable(addresses, request), "used": used,
                "free": max(0, ippools.pool_size(obj) - used)}


class PoolEditView(generic.ObjectEditView):
    roles = ADMIN
    queryset = IPPool.objects.all()
    form = IPPoolForm

    def save(self, request, form, obj):
        if obj is None:
            return ippools.create_pool(**form.cleaned_data)
        return form.save()

    def success_url(self, request, obj):
        return reverse("nodes:pool", args=[obj.pk])
