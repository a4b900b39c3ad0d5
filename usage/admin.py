from django.contrib import admin

from usage.models import Alert, UsageMetric


@admin.register(UsageMetric)
class UsageMetricAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "user",
        "provider",
        "model",
        "tier",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "latency_ms",
        "ttft_ms",
        "cache_hit",
        "error",
    )
    list_filter = ("provider", "tier", "cache_hit", "created_at")
    search_fields = ("trace_id", "message_id", "user__username", "model")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in UsageMetric._meta.fields]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("created_at", "severity", "name", "message", "notified_at")
    list_filter = ("severity", "name")
