from django import forms
from django.contrib import admin

from usage.alerts import ensure_rules
from usage.models import Alert, AlertRule, JobRun, Notification, UsageMetric
from usage.notify import SENDERS


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


class NotificationInline(admin.TabularInline):
    model = Notification
    extra = 0
    can_delete = False
    fields = ("channel", "event", "sent_at", "attempts", "last_error", "next_attempt_at")
    readonly_fields = fields


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = ("name", "threshold", "window_minutes", "min_requests", "severity", "channels", "enabled")

    def clean_channels(self):
        channels = self.cleaned_data["channels"]
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise forms.ValidationError('A list of channels, e.g. ["slack", "email"].')
        unknown = sorted(set(channels) - set(SENDERS))
        if unknown:
            raise forms.ValidationError(
                f"Unknown channel {', '.join(unknown)}: use {', '.join(sorted(SENDERS))}."
            )
        return list(dict.fromkeys(channels))

    def clean_threshold(self):
        threshold = self.cleaned_data["threshold"]
        if threshold < 0:
            raise forms.ValidationError("The threshold must be at least 0.")
        kind = self.instance.kind
        if kind in (AlertRule.Kind.ERROR_RATE, AlertRule.Kind.PROVIDER_ERRORS) and threshold > 1:
            raise forms.ValidationError("A rate is a fraction between 0 and 1 (0.05 is 5 %).")
        return threshold

    def clean_window_minutes(self):
        minutes = self.cleaned_data["window_minutes"]
        if not 1 <= minutes <= 24 * 60:
            raise forms.ValidationError("The window is between 1 minute and 24 hours (1440).")
        return minutes


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    """The alert rules, editable: threshold, window, severity, channels, on/off."""

    form = AlertRuleForm

    list_display = (
        "name",
        "kind",
        "threshold",
        "window_minutes",
        "min_requests",
        "severity",
        "channels",
        "enabled",
    )
    list_editable = ("threshold", "window_minutes", "severity", "enabled")
    readonly_fields = ("kind", "updated_at")

    def get_queryset(self, request):
        ensure_rules()  # the defaults exist before anybody evaluated them
        return super().get_queryset(request)

    def has_add_permission(self, request) -> bool:
        return False  # one rule per kind (usage.alerts.ensure_rules); edit them, switch them off

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    """Incidents: when each fired and resolved, and what was sent where."""

    list_display = ("created_at", "severity", "name", "subject", "message", "resolved_at", "sent")
    list_filter = ("severity", "name", ("resolved_at", admin.EmptyFieldListFilter))
    readonly_fields = [f.name for f in Alert._meta.fields]
    inlines = [NotificationInline]

    @admin.display(description="Notified")
    def sent(self, alert: Alert) -> str:
        rows = list(alert.notifications.all())
        done = sum(1 for n in rows if n.sent_at)
        return f"{done}/{len(rows)}" if rows else "-"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("notifications")


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "alert", "channel", "event", "sent_at", "attempts", "last_error")
    list_filter = ("channel", "event", ("sent_at", admin.EmptyFieldListFilter))
    readonly_fields = [f.name for f in Notification._meta.fields]


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    """Background jobs as they ran (rollups, alerts, notification retries): who ran each, how it ended."""

    list_display = ("started_at", "name", "runner", "finished_at", "result", "error")
    list_filter = ("name",)
    readonly_fields = [f.name for f in JobRun._meta.fields]
