"""Celery tasks: the schedule's jobs (``usage.schedule``) and alert notifications with retries."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="usage.tasks.run_job")
def run_job(name: str) -> bool:
    """One scheduled job, unless a web process's scheduler ran this slot already."""
    from usage.schedule import run_job as run

    return run(name, runner="celery")


@shared_task(bind=True, name="usage.tasks.send_notification", max_retries=None)
def send_notification(self, notification_id: str) -> bool:
    """Send one alert notification; when the channel fails, try again when the row says (backoff),
    until ``notify.MAX_ATTEMPTS``. The row is marked sent only once the channel took it."""
    from django.utils import timezone

    from usage import notify
    from usage.models import Notification

    try:
        return notify.deliver(notification_id)
    except notify.NotifyFailed as exc:
        row = Notification.objects.filter(pk=notification_id).values("attempts", "next_attempt_at").first()
        if row is None or row["attempts"] >= notify.MAX_ATTEMPTS:
            return False
        wait = (
            max(1.0, (row["next_attempt_at"] - timezone.now()).total_seconds())
            if row["next_attempt_at"]
            else 10.0
        )
        raise self.retry(exc=exc, countdown=wait) from exc


@shared_task(name="usage.tasks.evaluate_alerts")
def evaluate_alerts() -> int:
    """Kept for queued calls from before the schedule (``run_job("evaluate_alerts")``)."""
    from usage.alerts import evaluate

    return len(evaluate())
