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
    tier = models.CharField(max_length=16, blank=True, default="")  # the model tier asked for
    user_tier = models.CharField(max_length=8, blank=True, default="")  # the account's plan then
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


class UsageRollup(models.Model):
    """Usage rows summed per hour (and per day) by provider, model, model tier and the account's plan.

    Written by ``usage.rollups`` only, idempotently: a period is recomputed from the raw rows as a
    whole (delete and insert in one transaction), so rolling it twice changes nothing and a row that
    arrives late re-rolls its hour. Latencies are kept as histograms (``rollups.LATENCY_BUCKETS_MS``)
    so percentiles survive the summing.
    """

    class Period(models.TextChoices):
        HOUR = "hour"
        DAY = "day"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    period = models.CharField(max_length=4, choices=Period.choices)
    start = models.DateTimeField()  # UTC, the hour's (the day's) first instant
    provider = models.TextField()
    model = models.TextField()
    tier = models.CharField(max_length=16, blank=True, default="")
    user_tier = models.CharField(max_length=8, blank=True, default="")
    requests = models.IntegerField(default=0)
    errors = models.IntegerField(default=0)
    timeouts = models.IntegerField(default=0)
    rate_limited = models.IntegerField(default=0)  # attempts the vendor refused with 429
    cache_hits = models.IntegerField(default=0)
    unpriced = models.IntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    estimated_cost_usd = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    saved_cost_usd = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    latency_sum_ms = models.BigIntegerField(default=0)
    latency_buckets = models.JSONField(default=list)  # successful attempts' latency, per bucket
    ttft_buckets = models.JSONField(default=list)
    cached_latency_buckets = models.JSONField(default=list)  # cache hits: lookup and replay
    rolled_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "usage_rollups"
        ordering = ["-start"]
        constraints = [
            models.UniqueConstraint(
                fields=["period", "start", "provider", "model", "tier", "user_tier"], name="uniq_rollup_group"
            )
        ]
        indexes = [models.Index(fields=["period", "start"], name="idx_usage_rollups_period")]

    def __str__(self) -> str:
        return f"{self.period} {self.start:%Y-%m-%d %H}:00 {self.provider}/{self.model}"


class AlertRule(models.Model):
    """One alert rule, editable by staff in the admin (the spec's four and an unpriced model)."""

    class Kind(models.TextChoices):
        ERROR_RATE = "error_rate", "Error rate over the window (fraction, 0.05 = 5 %)"
        COST = "cost", "Cost over the window (USD)"
        LATENCY_P95 = "latency_p95", "p95 latency over the window (ms)"
        PROVIDER_ERRORS = "provider_errors", "A provider's error rate over the window (fraction)"
        UNPRICED = "unpriced", "A model without a price answered in the window"

    class Severity(models.TextChoices):
        WARNING = "warning"
        CRITICAL = "critical"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20, choices=Kind.choices, unique=True)
    name = models.CharField(max_length=100)
    threshold = models.DecimalField(max_digits=14, decimal_places=4)
    window_minutes = models.PositiveIntegerField()
    min_requests = models.PositiveIntegerField(
        default=10, help_text="Rates and percentiles are judged only over at least this many attempts."
    )
    severity = models.CharField(max_length=16, choices=Severity.choices)
    channels = models.JSONField(
        default=list, blank=True, help_text='Where it is sent: any of "slack", "pagerduty", "email".'
    )
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "usage_alert_rules"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Alert(models.Model):
    """An incident: a rule's condition held from ``created_at`` until ``resolved_at``.

    At most one incident per ``key`` is open (a partial unique constraint), so two workers
    evaluating at once never open it twice; each incident notifies once when it fires and once
    when it resolves (``Notification``).
    """

    Severity = AlertRule.Severity

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    rule = models.ForeignKey(
        AlertRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    name = models.CharField(max_length=100)
    key = models.CharField(max_length=200)  # the rule's kind, and its subject: "provider_errors:groq"
    subject = models.CharField(max_length=200, blank=True, default="")  # a provider, a model
    severity = models.CharField(max_length=16, choices=Severity.choices)
    message = models.TextField()
    value = models.TextField(blank=True, default="")
    resolved_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "usage_alerts"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=models.Q(resolved_at=None), name="uniq_open_alert_per_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.severity}: {self.name}"


class Notification(models.Model):
    """One message about an incident to one channel: sent once when it fires, once when it resolves."""

    class Event(models.TextChoices):
        FIRED = "fired"
        RESOLVED = "resolved"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    channel = models.CharField(max_length=16)
    event = models.CharField(max_length=8, choices=Event.choices)
    attempts = models.IntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "usage_notifications"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["alert", "channel", "event"], name="uniq_notification")
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.event}: {self.alert}"


class JobRun(models.Model):
    """A scheduled job's run (``usage.schedule``): one row per job and slot claims the slot, so the
    Celery beat and every web process's scheduler can all be running and each slot runs once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=64)
    slot = models.BigIntegerField()  # the slot's start, seconds since the epoch
    runner = models.CharField(max_length=100, blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")

    class Meta:
        db_table = "usage_job_runs"
        ordering = ["-started_at"]
        constraints = [models.UniqueConstraint(fields=["name", "slot"], name="uniq_job_slot")]

    def __str__(self) -> str:
        return f"{self.name} @ {self.started_at:%Y-%m-%d %H:%M:%S}"
