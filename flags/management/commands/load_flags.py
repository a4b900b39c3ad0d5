"""``manage.py load_flags FILE.json``: the runtime flags for a deploy, checked, audited, in effect at once."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from flags import runtime
from flags.schema import FlagsInvalid


class Command(BaseCommand):
    help = "Store the runtime flags from a JSON file (replacing the stored ones; defaults fill the rest)."

    def add_arguments(self, parser):
        parser.add_argument("file", help='a JSON object of flags, e.g. {"enableAIGateway": false}')
        parser.add_argument("--merge", action="store_true", help="merge over the stored flags instead")

    def handle(self, file, merge, **options):
        try:
            value = json.loads(Path(file).read_text())
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        except ValueError as exc:
            raise CommandError(f"{file} is not JSON: {exc}") from None
        try:
            effective = runtime.set_flags(value, source="command", replace=not merge)
        except FlagsInvalid as exc:
            raise CommandError(
                "the flags were not stored:\n" + "\n".join(f"  {p}: {m}" for p, m in exc.errors)
            ) from None
        self.stdout.write(json.dumps(effective, indent=1, sort_keys=True))
        self.stdout.write(self.style.SUCCESS("Stored; every process uses them within seconds."))
