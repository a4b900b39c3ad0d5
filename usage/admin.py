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
        "estimated",
        "cost_usd",
        "latency_ms",
        "ttft_ms",
        "cache_hit",
        "error",
    )
    list_filter = ("provider", "tier", "cache_hit", "input_estimated", "output_estimated", "created_at")
    search_fields = ("trace_id", "message_id", "user__username", "model")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in UsageMetric._meta.fields]

    @admin.display(description="Counts", ordering="output_estimated")
    def estimated(self, row: UsageMetric) -> str:
        """Which token counts the vendor reported and which were estimated (a broken attempt)."""
        if not (row.input_estimated or row.output_estimated):
            return "reported"
        parts = [
            name for name, flag in (("input", row.input_estimated), ("output", row.output_estimated)) if flag
        ]
        return " + ".join(parts) + " estimated"


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("created_at", "severity", "name", "message", "notified_at")
    list_filter = ("severity", "name")
