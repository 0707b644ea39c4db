from django.contrib import admin, messages

from panel.nodes import services
from panel.nodes.models import Node


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
