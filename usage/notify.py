"""Alert notifications: Slack (incoming webhook), PagerDuty (Events API v2) and e-mail.

Each incident gets one ``Notification`` row per channel and event (fired, resolved), created with
the incident in one transaction; ``deliver`` sends one row at most once: it claims the row with a
lease (a conditional UPDATE, so two workers never both send it), sends, and marks it sent. A failed
send is not marked sent: it is retried by Celery (``usage.tasks.send_notification``, with backoff)
and, whatever happens to that task (no worker, a dead broker, the embedded mode), by the scheduled
``retry_due`` job, until ``MAX_ATTEMPTS``.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from usage.models import Alert, Notification

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)  # a claimed row is another sender's after this (a sender that died)
MAX_ATTEMPTS = 12
TIMEOUT_S = 5.0


class NotifyFailed(Exception):
    """The channel did not take the message; it stays unsent and is tried again."""


def backoff(attempts: int) -> timedelta:
    """Wait before the next try: 10 s, 20 s, 40 s … (CHIMERA_ALERT_RETRY_BASE_S doubling), at most 10 minutes."""
    return timedelta(seconds=min(600.0, settings.CHIMERA_ALERT_RETRY_BASE_S * 2 ** max(0, attempts - 1)))


def configured_channels() -> set[str]:
    channels = set()
    if settings.CHIMERA_ALERT_SLACK_WEBHOOK_URL:
        channels.add("slack")
    if settings.CHIMERA_ALERT_PAGERDUTY_ROUTING_KEY:
        channels.add("pagerduty")
    if settings.CHIMERA_ALERT_EMAILS:
        channels.add("email")
    return channels


def plan(alert: Alert, event: str, channels: Iterable[str]) -> list[Notification]:
    """The notification rows for an incident's event: the rule's channels that are configured.
    Called inside the transaction that opens (resolves) the incident."""
    wanted = [c for c in channels if c in configured_channels()]
    rows = [Notification(alert=alert, channel=c, event=event) for c in dict.fromkeys(wanted)]
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    return rows


def dispatch(ids: list) -> None:
    """Hand new notifications to Celery once their transaction commits; without a broker (the
    embedded mode) send them here. Whatever is not sent now, ``retry_due`` sends later."""

    def send() -> None:
        for nid in ids:
            if settings.CELERY_TASK_ALWAYS_EAGER:
                try:
                    deliver(nid)
                except NotifyFailed:
                    pass  # recorded on the row; the schedule tries again
                continue
            from usage.tasks import send_notification

            try:
                send_notification.delay(str(nid))
            except Exception as exc:  # the broker is down: the schedule sends it
                log.warning("could not queue notification %s (%s); the schedule will send it", nid, exc)

    transaction.on_commit(send)


def deliver(nid) -> bool:
    """Send one notification unless it was sent; True when it is sent (now or before).
    Raises ``NotifyFailed`` when the channel failed (the row records why and when to try again)."""
    now = timezone.now()
    claimed = (
        Notification.objects.filter(pk=nid, sent_at=None, attempts__lt=MAX_ATTEMPTS)
        .filter(Q(next_attempt_at=None) | Q(next_attempt_at__lte=now))
        .update(next_attempt_at=now + LEASE, attempts=F("attempts") + 1)
    )
    if not claimed:
        return Notification.objects.filter(pk=nid).exclude(sent_at=None).exists()
    note = Notification.objects.select_related("alert").get(pk=nid)
    try:
        SENDERS[note.channel](note.alert, note.event)
    except NotifyFailed as exc:
        Notification.objects.filter(pk=nid).update(
            last_error=str(exc)[:1000], next_attempt_at=timezone.now() + backoff(note.attempts)
        )
        log.warning(
            "%s notification of %r failed (attempt %d): %s", note.channel, note.alert.name, note.attempts, exc
        )
        raise
    Notification.objects.filter(pk=nid).update(sent_at=timezone.now(), last_error="", next_attempt_at=None)
    return True


def retry_due(now=None) -> int:
    """Send the notifications that are due: failed ones whose wait is over, and ones never sent
    (their task was lost). How many were sent."""
    now = now or timezone.now()
    due = Notification.objects.filter(sent_at=None, attempts__lt=MAX_ATTEMPTS).filter(
        Q(next_attempt_at__lte=now) | Q(next_attempt_at=None, created_at__lte=now - timedelta(seconds=30))
    )
    sent = 0
    for nid in list(due.order_by("created_at").values_list("pk", flat=True)[:100]):
        try:
            sent += deliver(nid)
        except NotifyFailed:
            continue
    return sent


# ---- the channels ------------------------------------------------------------------------
def _text(alert: Alert, event: str) -> str:
    if event == Notification.Event.RESOLVED:
        return f"[resolved] {alert.name}: {alert.resolved_message or alert.message}"
    return f"[{alert.severity}] {alert.name}: {alert.message}"


def _post(url: str, payload: dict, ok: Callable[[int], bool]) -> None:
    request = urllib.request.Request(
        url, json.dumps(payload).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:  # refused, timed out, DNS, a malformed URL
        raise NotifyFailed(f"{type(exc).__name__}: {exc}") from exc
    if not ok(status):
        raise NotifyFailed(f"HTTP {status}")


def _slack(alert: Alert, event: str) -> None:
    """A Slack incoming webhook: answers 200 "ok"."""
    emoji = (
        ":white_check_mark:"
        if event == "resolved"
        else (":rotating_light:" if alert.severity == "critical" else ":warning:")
    )
    _post(
        settings.CHIMERA_ALERT_SLACK_WEBHOOK_URL,
        {"text": f"{emoji} {_text(alert, event)}"},
        lambda status: status == 200,
    )


def _pagerduty(alert: Alert, event: str) -> None:
    """PagerDuty Events API v2: trigger, then resolve, one incident per alert (its dedup key)."""
    payload: dict = {
        "routing_key": settings.CHIMERA_ALERT_PAGERDUTY_ROUTING_KEY,
        "event_action": "resolve" if event == "resolved" else "trigger",
        "dedup_key": f"chimera-{alert.pk}",
    }
    if event != "resolved":
        payload["payload"] = {
            "summary": f"{alert.name}: {alert.message}"[:1024],
            "source": "chimera",
            "severity": alert.severity,  # "critical" and "warning" are PagerDuty severities
            "timestamp": alert.created_at.isoformat(),
            "component": alert.subject or None,
            "custom_details": {"value": alert.value, "key": alert.key},
        }
    _post(settings.CHIMERA_ALERT_PAGERDUTY_URL, payload, lambda status: status == 202)


def _email(alert: Alert, event: str) -> None:
    try:
        send_mail(
            subject=f"Chimera: {_text(alert, event)}"[:200],
            message=f"{_text(alert, event)}\n\nSince {alert.created_at:%Y-%m-%d %H:%M} UTC"
            + (f", resolved {alert.resolved_at:%Y-%m-%d %H:%M} UTC" if alert.resolved_at else "")
            + f".\nValue: {alert.value or '-'}\n",
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=settings.CHIMERA_ALERT_EMAILS,
        )
    except Exception as exc:  # SMTP refused, timed out, rejected
        raise NotifyFailed(f"{type(exc).__name__}: {exc}") from exc


SENDERS: dict[str, Callable[[Alert, str], None]] = {"slack": _slack, "pagerduty": _pagerduty, "email": _email}
