"""The runtime flags row (the spec's Edge Config document)."""

from __future__ import annotations

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
