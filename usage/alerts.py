"""Alert rules from the spec: error rate, cost per hour, p95 latency, provider degradation, unpriced models."""

from __future__ import annotations

import json
import logging
import urllib.request
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from usage.dashboard import percentile
from usage.models import Alert, UsageMetric

log = logging.getLogger(__name__)


def _window_start(now, minutes: int):
    epoch = int(now.timestamp()) // (minutes * 60) * (minutes * 60)
    return now.fromtimestamp(epoch, tz=now.tzinfo)


def _fire(
    name: str, key: str, severity: str, message: str, value: str, window_minutes: int, now
) -> Alert | None:
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                name=name,
                key=key,
                severity=severity,
                message=message,
                value=value,
                window_start=_window_start(now, window_minutes),
            )
    except IntegrityError:
        return None  # already fired in this window (another worker, or an earlier run)
    _notify(alert)
    return alert


def _notify(alert: Alert) -> None:
    log.warning("ALERT %s %s: %s", alert.severity, alert.name, alert.message)
    url = settings.CHIMERA_ALERT_WEBHOOK_URL
    if url:
        body = json.dumps({"text": f"[{alert.severity}] {alert.name}: {alert.message}"}).encode()
        try:
            urllib.request.urlopen(
                urllib.request.Request(url, body, {"Content-Type": "application/json"}), timeout=5
            )
        except OSError:
            log.exception("alert webhook failed")
    Alert.objects.filter(pk=alert.pk, notified_at=None).update(notified_at=timezone.now())


def evaluate(now=None) -> list[Alert]:
    now = now or timezone.now()
    fired: list[Alert | None] = []

    def window(minutes):
        return UsageMetric.objects.filter(created_at__gte=now - timedelta(minutes=minutes))

    five = window(5).aggregate(n=Count("id"), errors=Count("id", filter=~Q(error="")))
    if five["n"] >= 10 and five["errors"] / five["n"] > settings.CHIMERA_ALERT_ERROR_RATE:
        rate = five["errors"] / five["n"]
        fired.append(
            _fire(
                "High Error Rate",
                "error_rate",
                "critical",
                f"{rate:.1%} of {five['n']} requests failed in the last 5 minutes",
                f"{rate:.4f}",
                5,
                now,
            )
        )
    cost = window(60).aggregate(c=Sum("cost_usd"))["c"] or Decimal("0")
    if cost > Decimal(settings.CHIMERA_ALERT_COST_PER_HOUR):
        fired.append(
            _fire(
                "Cost Spike",
                "cost_hour",
                "warning",
                f"${cost:.2f} spent in the last hour",
                str(cost),
                60,
                now,
            )
        )
    latencies = list(
        window(10).filter(error="").exclude(latency_ms=None).values_list("latency_ms", flat=True)[:10000]
    )
    p95 = percentile(latencies, 95)
    if p95 is not None and len(latencies) >= 10 and p95 > settings.CHIMERA_ALERT_LATENCY_P95_MS:
        fired.append(
            _fire(
                "Slow Responses",
                "latency_p95",
                "warning",
                f"p95 latency {p95} ms over 10 minutes",
                str(p95),
                10,
                now,
            )
        )
    for row in window(5).values("provider").annotate(n=Count("id"), errors=Count("id", filter=~Q(error=""))):
        if row["n"] >= 10 and row["errors"] / row["n"] > 0.10:
            rate = row["errors"] / row["n"]
            fired.append(
                _fire(
                    "Provider Degradation",
                    f"provider:{row['provider']}",
                    "critical",
                    f"{row['provider']} failed {rate:.1%} of {row['n']} requests in 5 minutes "
                    "(the router fails over; its breaker opens after 5 consecutive failures)",
                    f"{rate:.4f}",
                    5,
                    now,
                )
            )
    for row in window(60).filter(cost_usd=None, cache_hit=False).values("provider", "model").distinct():
        fired.append(
            _fire(
                "Unpriced Model",
                f"unpriced:{row['provider']}/{row['model']}",
                "warning",
                f"{row['provider']}/{row['model']} has no price in the catalog: its cost is unknown",
                "",
                60,
                now,
            )
        )
    return [a for a in fired if a is not None]
