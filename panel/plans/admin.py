from django.contrib import admin

from panel.plans.models import Allocation, Budget, Plan


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "active", "ram", "diskspace", "cpus", "traffic")
    list_filter = ("active", "over_quota_action")
    search_fields = ("name", "description")


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ("grantee", "vps_count", "ram", "disk", "cpus", "ipv4", "ipv6_prefixes", "traffic")


@admin.register(Allocation)
class AllocationAdmin(admin.ModelAdmin):
    list_display = ("holder", "customer", "reseller", "ram", "disk", "cpus")
    readonly_fields = [f.name for f in Allocation._meta.fields]

    def has_add_permission(self, request):
        return False
