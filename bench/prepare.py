"""Prepare the benchmark database: migrate, turn off the cache and rate limits, make the bench user.

Run by the harness in the benchmark's environment (``python bench/prepare.py``); prints JSON:
the user's API key and a logged-in session cookie for the page's WebSocket.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chimera.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from accounts.apikeys import create_api_key  # noqa: E402
from accounts.models import User  # noqa: E402
from flags.runtime import set_flags  # noqa: E402

USERNAME = "bench"


def main() -> None:
    call_command("migrate", verbosity=0, interactive=False)
    # Every request must really stream from upstream: no response cache, no limits.
    set_flags({"enableCaching": False, "rateLimit": {"enabled": False}})
    user, _ = User.objects.get_or_create(username=USERNAME, defaults={"email": "bench@example.invalid"})
    _, api_key = create_api_key(user, "bench")
    client = Client()
    client.force_login(user)
    print(json.dumps({"api_key": api_key, "session": client.cookies["sessionid"].value}))


if __name__ == "__main__":
    main()
