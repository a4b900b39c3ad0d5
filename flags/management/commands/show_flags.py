"""``manage.py show_flags``: the runtime flags in effect, and the last changes."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from flags import runtime
from flags.models import FlagChange


class Command(BaseCommand):
    help = "Print the runtime flags in effect (JSON) and who changed them last."

    def handle(self, **options):
        runtime.invalidate()  # this process's copy could be up to a TTL old
        self.stdout.write(json.dumps(runtime.get_flags(), indent=1, sort_keys=True))
        for change in FlagChange.objects.select_related("changed_by")[:5]:
            self.stderr.write(f"changed {change}")
