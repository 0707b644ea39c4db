from django.contrib import admin

from panel.core.models import Operation


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = ("created", "action", "node_name", "target_type", "target_id", "status", "user",
                    "duration_ms")
    list_filter = ("status", "action", "node_name")
    search_fields = ("id", "target_id", "request_id", "error_code")
    readonly_fields = [f.name for f in Operation._meta.fields]
    date_hierarchy = "created"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
