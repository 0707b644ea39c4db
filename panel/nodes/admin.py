from django.contrib import admin, messages

from panel.nodes import services
from panel.nodes.models import IPAddress, IPPool, Node, NodeGroup


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ("name", "state", "last_seen", "description")
    list_filter = ("state",)
    search_fields = ("name", "description")
    readonly_fields = ("state", "last_seen", "facts", "created")
    actions = ["ping_nodes"]

    @admin.action(description="Ping selected nodes")
    def ping_nodes(self, request, queryset):
        for node in queryset:
            services.ping(node, user=request.user)
        messages.info(request, f"Ping sent to {queryset.count()} node(s); see Operations for replies.")


@admin.register(NodeGroup)
class NodeGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "description")
    filter_horizontal = ("nodes",)


@admin.register(IPPool)
class IPPoolAdmin(admin.ModelAdmin):
    list_display = ("name", "family", "network", "unit_prefix", "node", "group", "active")
    list_filter = ("family", "active")


@admin.register(IPAddress)
class IPAddressAdmin(admin.ModelAdmin):
    list_display = ("address", "prefix_length", "pool", "owner", "assigned_to", "ptr", "allocated")
    list_filter = ("pool",)
    search_fields = ("address", "assigned_to", "ptr")
    readonly_fields = ("pool", "address", "prefix_length", "allocated")

    def has_add_permission(self, request):
        return False
