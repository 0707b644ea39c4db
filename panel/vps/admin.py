from django.contrib import admin

from panel.vps.models import VPS


@admin.register(VPS)
class VPSAdmin(admin.ModelAdmin):
    list_display = ("ctid", "hostname", "node", "customer", "plan", "state", "desired_state", "state_changed")
    list_filter = ("state", "desired_state", "node")
    search_fields = ("ctid", "hostname", "customer__username")
    readonly_fields = ("ctid", "state", "init_pid", "state_changed", "created", "updated")
