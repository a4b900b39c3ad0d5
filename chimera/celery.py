"""The Celery app. Without REDIS_URL tasks run in-process (CELERY_TASK_ALWAYS_EAGER)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chimera.settings")

app = Celery("chimera")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _schedule() -> dict:
    from usage.schedule import beat_schedule

    return beat_schedule()


# The beat runs usage/schedule.py's jobs (each web process runs them too: each slot runs once).
app.conf.beat_schedule = _schedule()
