"""The Celery app. Without REDIS_URL tasks run in-process (CELERY_TASK_ALWAYS_EAGER)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chimera.settings")

app = Celery("chimera")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
