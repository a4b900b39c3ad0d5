from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal

from asgiref.sync import sync_to_async
from django import forms
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from usage.alerts import ensure_rules, resolve_by_hand
from usage.models import Alert, AlertRule, JobRun, Notification, UsageMetric
from usage.notify import SENDERS
from usage.rollups import MICRO


class HasErrorFilter(admin.SimpleListFilter):
    title = "error"
    parameter_name = "has_error"

    def lookups(self, request, model_admin):
        return (("yes", "Has an error"), ("no", "No error"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(error="")
        if self.value() == "no":
            return queryset.filter(error="")
        return queryset


class PlanFilter(admin.AllValuesFieldListFilter):
    """The account's plan when the row was recorded (``user_tier``)."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.title = "user tier (plan)"


class _Echo:
    """A file-like object whose ``write`` hands the line back: csv.writer rows, one at a time."""

    def write(self, value: str) -> str:
        return value


EXPORT_COLUMNS = (
    "id", "created_at", "user_id", "user__username", "user_tier", "conversation_id", "message_id",
    "provider", "model", "tier", "input_tokens", "cached_input_tokens", "output_tokens",
    "reasoning_tokens", "cache_write_tokens", "input_estimated", "output_estimated", "cost_usd",
    "saved_cost_usd", "cache_hit", "latency_ms", "ttft_ms", "status_code", "error", "trace_id",
)  # fmt: skip
EXPORT_BATCH = 2000


def _csv_cell(value) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return "" if value is None else value


def cost_totals(rows: QuerySet[UsageMetric]) -> dict:
    """Requests, tokens, cost and savings of ``rows`` (the changelist's filtered queryset), in Decimal."""
    agg = rows.order_by().aggregate(
        requests=Count("id"),
        input_tokens=Sum("input_tokens"),
        output_tokens=Sum("output_tokens"),
        cost=Sum("cost_usd"),
        saved=Sum("saved_cost_usd"),
        errors=Count("id", filter=~Q(error="")),
        unpriced=Count("id", filter=Q(cost_usd=None, cache_hit=False)),
    )
    return {
        "requests": agg["requests"],
        "input_tokens": agg["input_tokens"] or 0,
        "output_tokens": agg["output_tokens"] or 0,
        "tokens": (agg["input_tokens"] or 0) + (agg["output_tokens"] or 0),
        # SQLite sums decimals as floats: back to the column's six places.
        "cost_usd": Decimal(agg["cost"] or 0).quantize(MICRO),
        "saved_cost_usd": Decimal(agg["saved"] or 0).quantize(MICRO),
        "errors": agg["errors"],
        "unpriced": agg["unpriced"],
    }


def _batches(rows: QuerySet[UsageMetric], after: tuple | None) -> list[tuple]:
    """The next ``EXPORT_BATCH`` rows, newest first, after the (created_at, id) ``after`` (keyset
    paging: each batch its own short query, so a long export holds no cursor open)."""
    if after is not None:
        rows = rows.filter(Q(created_at__lt=after[0]) | Q(created_at=after[0], id__lt=after[1]))
    return list(rows.order_by("-created_at", "-id").values_list(*EXPORT_COLUMNS)[:EXPORT_BATCH])


def _export_lines(rows: QuerySet[UsageMetric]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    after = None
    while batch := _batches(rows, after):
        for row in batch:
            yield writer.writerow([_csv_cell(v) for v in row])
        after = (batch[-1][1], batch[-1][0])


async def _export_lines_async(rows: QuerySet[UsageMetric]) -> AsyncIterator[str]:
    # Under ASGI a synchronous iterator would be read whole into memory first: page it here instead.
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    after = None
    while batch := await sync_to_async(_batches)(rows, after):
        for row in batch:
            yield writer.writerow([_csv_cell(v) for v in row])
        after = (batch[-1][1], batch[-1][0])


@admin.register(UsageMetric)
class UsageMetricAdmin(admin.ModelAdmin):
    """Cost review: usage rows filtered by date, person, provider, model, cache, error and plan; the
    filtered rows' totals above the list; their CSV; cost per person and per conversation."""

    change_list_template = "admin/usage/usagemetric/change_list.html"
    list_display = (
        "created_at",
        "user_link",
        "provider",
        "model",
        "tier",
        "user_tier",
        "input_tokens",
        "output_tokens",
        "estimated",
        "cost_usd",
        "saved_cost_usd",
        "latency_ms",
        "ttft_ms",
        "cache_hit",
        "error",
        "conversation_link",
    )
    list_filter = (
        "created_at",
        ("user", admin.RelatedOnlyFieldListFilter),
        "provider",
        "model",
        "tier",
        ("user_tier", PlanFilter),
        "cache_hit",
        HasErrorFilter,
        "input_estimated",
        "output_estimated",
    )
    list_select_related = ("user",)
    search_fields = ("trace_id", "message_id", "conversation_id", "user__username", "model")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in UsageMetric._meta.fields] + ["user_link", "conversation_link"]

    def has_add_permission(self, request) -> bool:
        return False  # usage rows are written by the turns that spent the tokens

    @admin.display(description="Counts", ordering="output_estimated")
    def estimated(self, row: UsageMetric) -> str:
        """Which token counts the vendor reported and which were estimated (a broken attempt)."""
        if not (row.input_estimated or row.output_estimated):
            return "reported"
        parts = [
            name for name, flag in (("input", row.input_estimated), ("output", row.output_estimated)) if flag
        ]
        return " + ".join(parts) + " estimated"

    @admin.display(description="User", ordering="user__username")
    def user_link(self, row: UsageMetric) -> str:
        """The person (their admin page) and their usage rows."""
        return format_html(
            '<a href="{}">{}</a> (<a href="{}?user__id__exact={}" data-testid="user-rows">rows</a>)',
            reverse("admin:accounts_user_change", args=[row.user_id]),
            row.user,
            reverse("admin:usage_usagemetric_changelist"),
            row.user_id,
        )

    @admin.display(description="Conversation")
    def conversation_link(self, row: UsageMetric) -> str:
        """The conversation (its admin page) and its usage rows; "-" for turns without one."""
        if row.conversation_id is None:
            return "-"
        return format_html(
            '<a href="{}" data-testid="conversation-link">{}…</a> (<a href="{}?conversation_id__exact={}">rows</a>)',
            reverse("admin:chat_conversation_change", args=[row.conversation_id]),
            str(row.conversation_id)[:8],
            reverse("admin:usage_usagemetric_changelist"),
            row.conversation_id,
        )

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("export/", wrap(self.export_view), name="usage_usagemetric_export"),
            path("by-user/", wrap(self.by_user_view), name="usage_usagemetric_by_user"),
            path(
                "by-conversation/", wrap(self.by_conversation_view), name="usage_usagemetric_by_conversation"
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:  # not the redirect of a bad filter
            context["usage_totals"] = cost_totals(context["cl"].queryset)
        return response

    def _filtered(self, request) -> QuerySet[UsageMetric]:
        """The rows the changelist shows for this request's filters and search (all pages)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            return self.get_changelist_instance(request).queryset
        except IncorrectLookupParameters:
            raise _BadFilter from None

    def export_view(self, request):
        """The filtered rows as CSV, streamed (UTC ISO instants, exact decimals)."""
        try:
            rows = self._filtered(request)
        except _BadFilter:
            return HttpResponseBadRequest("These filters are not valid for usage rows.")
        lines = _export_lines_async(rows) if isinstance(request, ASGIRequest) else _export_lines(rows)
        response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="chimera-usage-{stamp}.csv"'
        return response

    def by_user_view(self, request):
        return self._cost_by(request, "user")

    def by_conversation_view(self, request):
        return self._cost_by(request, "conversation")

    def _cost_by(self, request, by: str):
        """Cost per person or per conversation over the filtered rows, the costliest first; each
        links to its usage rows (the same filters kept) and to the person or conversation."""
        try:
            rows = self._filtered(request)
        except _BadFilter:
            return HttpResponseBadRequest("These filters are not valid for usage rows.")
        field = "user_id" if by == "user" else "conversation_id"
        groups = (
            rows.order_by()
            # A conversation is one person's: grouping by its person too splits nothing but the
            # rows without a conversation.
            .values(*dict.fromkeys((field, "user_id", "user__username")))
            .annotate(
                requests=Count("id"),
                tokens=Coalesce(Sum("input_tokens"), 0) + Coalesce(Sum("output_tokens"), 0),
                cost=Sum("cost_usd"),
                saved=Sum("saved_cost_usd"),
                errors=Count("id", filter=~Q(error="")),
            )
            .order_by(F("cost").desc(nulls_last=True), "-requests", field, "user_id")
        )
        # The filters kept, without the grouping filter this page sets itself.
        param = "user__id__exact" if by == "user" else "conversation_id__exact"
        kept = request.GET.copy()
        kept.pop(param, None)
        changelist = reverse("admin:usage_usagemetric_changelist")
        by_conversation = reverse("admin:usage_usagemetric_by_conversation")

        def url(base: str, **params: str) -> str:
            query = kept.copy()
            for name, value in params.items():
                query[name] = value
            return f"{base}?{query.urlencode()}"

        lines = []
        for g in groups[:COST_BY_LIMIT]:
            key, person = g[field], g["user_id"]
            if by == "user":
                subject_url = reverse("admin:accounts_user_change", args=[key])
                subject = g["user__username"]
                rows_url = url(changelist, **{param: str(key)})
            else:
                subject_url = reverse("admin:chat_conversation_change", args=[key]) if key else ""
                subject = str(key) if key else "(no conversation)"
                rows_url = url(
                    changelist,
                    user__id__exact=str(person),
                    **({param: str(key)} if key else {"conversation_id__isnull": "True"}),
                )
            lines.append(
                {
                    "key": key,
                    "subject": subject,
                    "subject_url": subject_url,
                    "rows_url": rows_url,
                    "person": g["user__username"],
                    # The person's conversations, costliest first (the same filters).
                    "conversations_url": url(by_conversation, user__id__exact=str(person)),
                    "requests": g["requests"],
                    "tokens": g["tokens"],
                    "cost_usd": Decimal(g["cost"] or 0).quantize(MICRO),
                    "saved_cost_usd": Decimal(g["saved"] or 0).quantize(MICRO),
                    "errors": g["errors"],
                }
            )
        if by == "conversation":
            titles = _conversation_titles([line["key"] for line in lines if line["key"]])
            for line in lines:
                line["title"] = titles.get(line["key"], "")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Cost by {'person' if by == 'user' else 'conversation'}",
            "by": by,
            "lines": lines,
            "limit": COST_BY_LIMIT,
            "totals": cost_totals(rows),
            "query": kept.urlencode(),
        }
        return TemplateResponse(request, "admin/usage/usagemetric/cost_by.html", context)


COST_BY_LIMIT = 500


class _BadFilter(Exception):
    pass


def _conversation_titles(ids: list) -> dict:
    """Conversation titles by id. ``usage`` keeps only ids of ``chat`` (one-way dependencies), so the
    model is looked up by name, and the page works without it."""
    try:
        conversation = apps.get_model("chat", "Conversation")
    except LookupError:
        return {}
    return dict(conversation.objects.filter(id__in=ids).values_list("id", "title"))


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
    actions = ["resolve_now"]

    @admin.action(description="Resolve now (notifies; a degraded provider returns to the routes)")
    def resolve_now(self, request, queryset):
        done = sum(
            resolve_by_hand(alert, request.user.get_username()) for alert in queryset.filter(resolved_at=None)
        )
        self.message_user(request, f"{done} incident(s) resolved.")

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
