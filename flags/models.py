"""The runtime flags row (the spec's Edge Config document)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class RuntimeFlags(models.Model):
    """One row: the spec's Edge Config document, editable in the admin.

    A change takes effect within a couple of seconds in every process
    (see ``flags.runtime``), which is what makes rollback instant.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    value = models.JSONField(default=dict, help_text="Merged over the defaults; see README 'Rollback'.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "runtime_flags"
        verbose_name = "runtime flags"
        verbose_name_plural = "runtime flags"

    def __str__(self) -> str:
        return "Runtime flags"


class FlagChange(models.Model):
    """The audit of the flags: who changed them, when, from what to what, and how."""

    class Source(models.TextChoices):
        ADMIN = "admin"
        COMMAND = "command"
        CODE = "code"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=16, choices=Source.choices)
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "runtime_flag_changes"
        ordering = ["-changed_at"]

    def __str__(self) -> str:
        return f"{self.changed_at:%Y-%m-%d %H:%M:%S} UTC by {self.changed_by or self.source}"
