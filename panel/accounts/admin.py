from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from panel.accounts.models import ApiToken, AuthEvent, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "role", "owner", "is_active", "last_login")
    list_filter = ("role", "is_active")
    fieldsets = (
        *BaseUserAdmin.fieldsets[:1],
        ("Role", {"fields": ("role", "owner")}),
        *[fs for fs in BaseUserAdmin.fieldsets[1:] if fs[0] != "Permissions"],
        ("Status", {"fields": ("is_active",)}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "role", "owner", "password1", "password2")}),
    )


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "scope", "created", "expires", "revoked_at", "last_used")
    list_filter = ("scope",)
    readonly_fields = [f.name for f in ApiToken._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(AuthEvent)
class AuthEventAdmin(admin.ModelAdmin):
    list_display = ("time", "kind", "username", "ip", "user_agent")
    list_filter = ("kind",)
    search_fields = ("username", "ip")
    readonly_fields = [f.name for f in AuthEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
