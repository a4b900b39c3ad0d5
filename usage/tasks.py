"""Background jobs. Idempotent: an alert is claimed by a unique (key, window) row."""

from __future__ import annotations

from celery import shared_task


@shared_task
def evaluate_alerts() -> int:
    from usage.alerts import evaluate

    return len(evaluate())
