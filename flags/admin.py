from django.contrib import admin

from flags import runtime
from flags.models import RuntimeFlags


@admin.register(RuntimeFlags)
class RuntimeFlagsAdmin(admin.ModelAdmin):
    list_display = ("__str__", "updated_at")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        runtime.invalidate()  # every process sees the change within seconds: instant rollback
