from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from panel.accounts.models import User


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
