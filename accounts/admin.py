from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import ApiKey, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    fieldsets = (*(BaseUserAdmin.fieldsets or ()), ("Chimera", {"fields": ("tier",)}))
    add_fieldsets = (*BaseUserAdmin.add_fieldsets, ("Chimera", {"fields": ("tier",)}))
    list_display = ("username", "email", "tier", "is_staff", "date_joined")
    list_filter = ("tier", "is_staff", "is_active")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "hashed_key", "created_at", "last_used_at")
    search_fields = ("name", "user__username", "prefix")
