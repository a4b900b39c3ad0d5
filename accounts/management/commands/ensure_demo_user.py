from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.models import User

CREDENTIALS = Path(settings.BASE_DIR) / "var" / "demo-credentials.txt"


class Command(BaseCommand):
    help = "Create the demo account (staff, pro tier) if missing, and print how to sign in."

    def handle(self, **options):
        username = settings.CHIMERA_DEMO_USER
        user = User.objects.filter(username=username).first()
        if user is None or not CREDENTIALS.exists():
            password = secrets.token_urlsafe(9)
            if user is None:
                user = User(username=username, tier=User.Tier.PRO, is_staff=True, is_superuser=True)
            user.set_password(password)
            user.save()
            CREDENTIALS.parent.mkdir(parents=True, exist_ok=True)
            CREDENTIALS.write_text(f"{username} {password}\n")
            CREDENTIALS.chmod(0o600)
        username, password = CREDENTIALS.read_text().split()
        self.stdout.write(self.style.SUCCESS(f"Demo account: username {username}  password {password}"))
