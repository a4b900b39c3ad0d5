"""Alert rules → incidents → notifications, and a degraded provider taken out of the routes.

Every minute (``usage.schedule``) each enabled rule (``AlertRule``, editable in the admin) is checked
over its window; each condition that holds is a finding with a key ("error_rate",
"provider_errors:groq", "unpriced:groq/model"). A finding without an open incident opens one; an
open incident without a finding resolves. At most one incident per key is open (a partial unique
constraint), so processes evaluating at once open it once; the incident's notifications (one per
channel, fired and resolved) are created in the same transaction and sent once (``usage.notify``).

Provider degradation acts: while its incident is open the provider is left out of the routes
(``degraded_providers``, read with the runtime flags, so every process knows within the flags' TTL),
as the breaker would; its window then holds no new attempts of it, so once the failures age out of the
window the rate recovers, the incident resolves and the provider is back by itself. If it is still
failing, the next failures open a new incident.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from usage import notify
from usage.models import Alert, AlertRule, Notification, UsageMetric
from usage.recording import stored

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Finding:
    key: str
    subject: str
    value: str
    message: str


def _window(rule: AlertRule, now: datetime) -> QuerySet[UsageMetric]:
    return UsageMetric.objects.filter(
        created_at__gt=now - timedelta(minutes=rule.window_minutes), created_at__lte=now
    )


def _rate(rows: QuerySet[UsageMetric]) -> tuple[int, int]:
    agg = rows.aggregate(n=Count("id"), errors=Count("id", filter=~Q(error="")))
    return agg["n"], agg["errors"]


def _error_rate(rule: AlertRule, now: datetime) -> list[Finding]:
    n, errors = _rate(_window(rule, now))
    if n < max(1, rule.min_requests) or Decimal(errors) / n <= rule.threshold:
        return []
    rate = errors / n
    return [
        Finding(
            "error_rate",
            "",
            f"{rate:.4f}",
            f"{rate:.1%} of {n} requests failed in the last {rule.window_minutes} minutes",
        )
    ]


def _cost(rule: AlertRule, now: datetime) -> list[Finding]:
    cost = stored(_window(rule, now).aggregate(c=Sum("cost_usd"))["c"] or Decimal("0"))
    assert cost is not None
    if cost <= rule.threshold:
        return []
    return [Finding("cost", "", str(cost), f"${cost:.2f} spent in the last {rule.window_minutes} minutes")]


def _latency_p95(rule: AlertRule, now: datetime) -> list[Finding]:
    latencies = _window(rule, now).filter(error="", cache_hit=False).exclude(latency_ms=None)
    n = latencies.count()
    if n < max(1, rule.min_requests):
        return []
    # The exact 95th percentile: the row at its rank (nearest rank), read by the database.
    rank = max(0, min(n - 1, round(0.95 * (n - 1))))
    p95 = latencies.order_by("latency_ms").values_list("latency_ms", flat=True)[rank] or 0
    if p95 <= rule.threshold:
        return []
    return [
        Finding(
            "latency_p95",
            "",
            str(p95),
            f"p95 latency {p95} ms over {n} requests in {rule.window_minutes} minutes",
        )
    ]


def _provider_errors(rule: AlertRule, now: datetime) -> list[Finding]:
    found = []
    rows = _window(rule, now).filter(cache_hit=False)
    for row in rows.values("provider").annotate(n=Count("id"), errors=Count("id", filter=~Q(error=""))):
        n, errors = row["n"], row["errors"]
        if n < max(1, rule.min_requests) or Decimal(errors) / n <= rule.threshold:
            continue
        rate = errors / n
        found.append(
            Finding(
                f"provider_errors:{row['provider']}",
                row["provider"],
                f"{rate:.4f}",
                f"{row['provider']} failed {rate:.1%} of {n} requests in {rule.window_minutes} minutes: "
                "taken out of the routes until its error rate recovers",
            )
        )
    return found


def _unpriced(rule: AlertRule, now: datetime) -> list[Finding]:
    rows = _window(rule, now).filter(cost_usd=None, cache_hit=False)
    return [
        Finding(
            f"unpriced:{row['provider']}/{row['model']}",
            f"{row['provider']}/{row['model']}",
            str(row["n"]),
            f"{row['provider']}/{row['model']} has no price in the catalog: the cost of its {row['n']} "
            "requests is unknown",
        )
        for row in rows.values("provider", "model").annotate(n=Count("id")).order_by("provider", "model")
    ]


CHECKS: dict[str, Callable[[AlertRule, datetime], list[Finding]]] = {
    AlertRule.Kind.ERROR_RATE: _error_rate,
    AlertRule.Kind.COST: _cost,
    AlertRule.Kind.LATENCY_P95: _latency_p95,
    AlertRule.Kind.PROVIDER_ERRORS: _provider_errors,
    AlertRule.Kind.UNPRICED: _unpriced,
}


def ensure_rules() -> None:
    """Create the rules that do not exist yet: the spec's four and an unpriced model, with this
    server's thresholds (CHIMERA_ALERT_*). Staff edit them in the admin; they are never overwritten."""
    if AlertRule.objects.count() >= len(AlertRule.Kind):
        return
    for kind, name, threshold, minutes, severity, min_requests in (
        (AlertRule.Kind.ERROR_RATE, "High Error Rate", settings.CHIMERA_ALERT_ERROR_RATE, 5, "critical", 10),
        (AlertRule.Kind.COST, "Cost Spike", settings.CHIMERA_ALERT_COST_PER_HOUR, 60, "warning", 0),
        (
            AlertRule.Kind.LATENCY_P95,
            "Slow Responses",
            settings.CHIMERA_ALERT_LATENCY_P95_MS,
            10,
            "warning",
            10,
        ),
        (AlertRule.Kind.PROVIDER_ERRORS, "Provider Degradation", "0.10", 5, "critical", 10),
        (AlertRule.Kind.UNPRICED, "Unpriced Model", "0", 60, "warning", 0),
    ):
        channels = ["slack", "pagerduty", "email"] if severity == "critical" else ["slack", "email"]
        try:
            with transaction.atomic():
                AlertRule.objects.get_or_create(
                    kind=kind,
                    defaults={
                        "name": name,
                        "threshold": Decimal(str(threshold)),
                        "window_minutes": minutes,
                        "severity": severity,
                        "channels": channels,
                        "min_requests": min_requests,
                    },
                )
        except IntegrityError:  # another process created it meanwhile
            continue


def evaluate(now: datetime | None = None) -> list[Alert]:
    """Check every rule once: open incidents for new findings, resolve the ones that stopped
    holding (or whose rule was switched off). The incidents opened now."""
    now = now or timezone.now()
    ensure_rules()
    fired: list[Alert] = []
    changed_routes = False
    for rule in AlertRule.objects.all():
        findings = {f.key: f for f in CHECKS[rule.kind](rule, now)} if rule.enabled else {}
        open_ = {a.key: a for a in Alert.objects.filter(rule=rule, resolved_at=None)}
        for key, finding in findings.items():
            if key not in open_:
                alert = _open(rule, finding)
                if alert is not None:
                    fired.append(alert)
                    changed_routes |= rule.kind == AlertRule.Kind.PROVIDER_ERRORS
        for key, alert in open_.items():
            if key not in findings:
                why = "the rule was switched off" if not rule.enabled else "back within the threshold"
                if _resolve(rule, alert, now, why):
                    changed_routes |= rule.kind == AlertRule.Kind.PROVIDER_ERRORS
    if changed_routes:
        from flags import runtime

        runtime.invalidate()  # every process re-reads the routes' degraded providers
    return fired


def _open(rule: AlertRule, finding: Finding) -> Alert | None:
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                rule=rule,
                name=rule.name,
                key=finding.key,
                subject=finding.subject,
                severity=rule.severity,
                message=finding.message,
                value=finding.value,
            )
            rows = notify.plan(alert, Notification.Event.FIRED, rule.channels or [])
            notify.dispatch([r.pk for r in rows])
    except IntegrityError:
        return None  # open already (another process, this same minute)
    log.warning("ALERT %s %s: %s", alert.severity, alert.name, alert.message)
    return alert


def _resolve(rule: AlertRule, alert: Alert, now: datetime, why: str) -> bool:
    with transaction.atomic():
        done = Alert.objects.filter(pk=alert.pk, resolved_at=None).update(
            resolved_at=now, resolved_message=f"{alert.message} — {why}"
        )
        if not done:
            return False  # another process resolved it
        alert.refresh_from_db()
        # The channels it fired on hear that it is over (also the ones the rule no longer lists).
        fired_on = list(
            alert.notifications.filter(event=Notification.Event.FIRED).values_list("channel", flat=True)
        )
        rows = notify.plan(alert, Notification.Event.RESOLVED, fired_on)
        notify.dispatch([r.pk for r in rows])
    log.warning("RESOLVED %s: %s", alert.name, why)
    return True


def resolve_by_hand(alert: Alert, by: str) -> bool:
    """Staff close an incident (Admin → Alerts → "Resolve now"): notified as resolved like any other;
    a degraded provider is back in the routes within the flags' TTL. If the condition still holds, the
    next evaluation opens a new incident."""
    if alert.rule is None or alert.resolved_at is not None:
        return False
    done = _resolve(alert.rule, alert, timezone.now(), f"resolved by {by}")
    if done and alert.rule.kind == AlertRule.Kind.PROVIDER_ERRORS:
        from flags import runtime

        runtime.invalidate()
    return done


def degraded_providers() -> list[str]:
    """Providers with an open degradation incident: the routes leave them out (providers/factory.py)."""
    return sorted(
        Alert.objects.filter(resolved_at=None, rule__kind=AlertRule.Kind.PROVIDER_ERRORS)
        .exclude(subject="")
        .values_list("subject", flat=True)
    )
