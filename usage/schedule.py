"""The background schedule: cost rollups, alert rules, notification retries — in every layout.

One table of jobs (``JOBS``) drives both runners:

- the Celery beat (``Procfile``'s ``beat`` and ``worker``): ``CELERY_BEAT_SCHEDULE`` is made from it,
  each entry a ``usage.tasks.run_job`` call;
- every web process (``start``, called with the ASGI app like the orphan sweep): a daemon thread that
  ticks every few seconds and runs what is due. So ``make run`` (no broker, no beat) runs the same
  schedule, and so do several web processes behind one database with or without a beat.

Whoever runs a job first in its slot (the interval it is due in) claims the slot with a ``JobRun``
row (unique per job and slot): each slot runs once however many runners there are, and the admin
shows every run, who ran it and how it ended. The jobs themselves are idempotent as well.

No model is imported at the top: chimera/celery.py reads ``beat_schedule`` before Django is set up.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import import_module

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from chimera.ticker import Ticker

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    target: str  # "module:function", called with no arguments
    every_s: int

    def function(self) -> Callable[[], object]:
        module, name = self.target.split(":")
        return getattr(import_module(module), name)


JOBS: dict[str, Job] = {
    "roll_usage": Job("usage.rollups:roll_recent", 60),
    "roll_history": Job("usage.rollups:roll_all", 86400),
    "evaluate_alerts": Job("usage.alerts:evaluate", 60),
    "retry_notifications": Job("usage.notify:retry_due", 30),
    "prune_job_runs": Job("usage.schedule:prune", 3600),
}
KEEP_RUNS = timedelta(days=7)
_tried: dict[str, int] = {}  # job -> the last slot this process tried to claim
RUNNER = f"{socket.gethostname()}:{os.getpid()}"


def beat_schedule() -> dict:
    """The Celery beat's schedule (settings.CELERY_BEAT_SCHEDULE)."""
    return {
        name: {"task": "usage.tasks.run_job", "schedule": float(job.every_s), "args": (name,)}
        for name, job in JOBS.items()
    }


def slot_of(job: Job, now: datetime) -> int:
    return int(now.timestamp()) // job.every_s * job.every_s


def run_job(name: str, now: datetime | None = None, runner: str = "") -> bool:
    """Run the job unless its current slot was claimed already; True when this call ran it."""
    from usage.models import JobRun

    job = JOBS[name]
    now = now or timezone.now()
    slot = slot_of(job, now)
    if _tried.get(name) == slot:
        return False  # this process claimed it or saw it claimed: no second INSERT for the same slot
    try:
        with transaction.atomic():
            run = JobRun.objects.create(name=name, slot=slot, runner=runner or RUNNER)
    except IntegrityError:
        _tried[name] = slot
        return False
    _tried[name] = slot
    try:
        result = job.function()()
    except Exception as exc:
        log.exception("scheduled job %s failed", name)
        JobRun.objects.filter(pk=run.pk).update(finished_at=timezone.now(), error=repr(exc)[:2000])
        return True
    JobRun.objects.filter(pk=run.pk).update(finished_at=timezone.now(), result=str(result)[:2000])
    return True


def run_due(now: datetime | None = None, runner: str = "") -> list[str]:
    """Run every job whose slot nobody has claimed yet; the names of those run here."""
    return [name for name in JOBS if run_job(name, now, runner)]


def prune() -> int:
    from usage.models import JobRun

    deleted, _ = JobRun.objects.filter(started_at__lt=timezone.now() - KEEP_RUNS).delete()
    return deleted


# ---- the web process's runner ------------------------------------------------------------
_ticker = Ticker(
    "chimera-schedule", lambda: run_due(runner=f"web {RUNNER}"), lambda: settings.CHIMERA_SCHEDULER_TICK_S
)


def start() -> bool:
    """Start this process's scheduler thread (once); False when CHIMERA_SCHEDULER is off."""
    if not settings.CHIMERA_SCHEDULER:
        return False
    _ticker.start()
    return True


def stop() -> None:
    _ticker.stop()
