"""Usage rows: one per provider attempt, with tokens, cost, latency and errors.

``usage`` knows nothing of ``chat`` beyond ids: ``message_id`` and
``conversation_id`` are plain UUID columns, so dependencies point one way.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class UsageMetric(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_metrics")
    message_id = models.UUIDField(null=True, blank=True, db_index=True)
    conversation_id = models.UUIDField(null=True, blank=True)
    provider = models.TextField()
    model = models.TextField()
    tier = models.CharField(max_length=16, blank=True, default="")
    input_tokens = models.IntegerField(default=0)
    cached_input_tokens = models.IntegerField(default=0)
    output_tokens = models.IntegerField(default=0)
    reasoning_tokens = models.IntegerField(default=0)
    cache_write_tokens = models.IntegerField(default=0)  # of input_tokens: written to the prompt cache
    # Whether the vendor reported each count (False) or it was estimated (True): a stream cut before
    # the vendor's usage arrived, Stop, a process that died mid-answer. Staff filter on these.
    input_estimated = models.BooleanField(default=False)
    output_estimated = models.BooleanField(default=False)
    # Null means the model had no price in the catalog: an alert, never a silent $0.
    cost_usd = models.DecimalField(max_digits=10, decimal_places=6, null=True, blank=True)
    latency_ms = models.IntegerField(null=True, blank=True)
    ttft_ms = models.IntegerField(null=True, blank=True)
    cache_hit = models.BooleanField(default=False)
    # A cache hit costs nothing; this is what the answer would have cost (the catalog's price of its usage).
    saved_cost_usd = models.DecimalField(max_digits=10, decimal_places=6, null=True, blank=True)
    trace_id = models.CharField(max_length=64, blank=True, default="")
    error = models.TextField(blank=True, default="")
    status_code = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "usage_metrics"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "created_at"], name="idx_usage_metrics_user_date"),
            models.Index(fields=["created_at", "provider"], name="idx_usage_metrics_date_prov"),
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} {self.cost_usd}"


class RateLimitRefusal(models.Model):
    """Messages the rate limit refused, per person and hour (the dashboard's refused attempts)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    tier = models.CharField(max_length=16)  # the person's plan then
    hour = models.DateTimeField()
    count = models.IntegerField(default=0)

    class Meta:
        db_table = "usage_rate_limit_refusals"
        constraints = [models.UniqueConstraint(fields=["user", "hour"], name="uniq_refusals_user_hour")]

    def __str__(self) -> str:
        return f"{self.user} {self.hour:%Y-%m-%d %H}:00 UTC: {self.count}"


class Alert(models.Model):
    """An alert that fired. ``key`` + ``window_start`` is unique, so two workers never send one twice."""

    class Severity(models.TextChoices):
        WARNING = "warning"
        CRITICAL = "critical"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    key = models.CharField(max_length=200)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    message = models.TextField()
    value = models.TextField(blank=True, default="")
    window_start = models.DateTimeField()
    notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "usage_alerts"
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["key", "window_start"], name="uniq_alert_per_window")]

    def __str__(self) -> str:
        return f"{self.severity}: {self.name}"
