from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from panel.core.models import Operation
from panel.nodes import services
from panel.nodes.models import Node


@staff_member_required
def node_list(request):
    nodes = list(Node.objects.all())
    last_pings = {}
    for op in Operation.objects.filter(target_type="node", action="node.ping").order_by("-created")[:200]:
        last_pings.setdefault(op.target_id, op)
    for node in nodes:
        node.last_ping = last_pings.get(node.name)
    return render(request, "nodes/node_list.html", {"nodes": nodes})


@staff_member_required
@require_POST
def node_ping(request, name):
    node = get_object_or_404(Node, name=name)
    services.ping(node, user=request.user)
    messages.info(request, f"Ping sent to {node.name}.")
    return redirect("nodes:list")
