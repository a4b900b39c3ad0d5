from __future__ import annotations

import secrets

from django.conf import settings
from django.core.management.base import BaseCommand

from chimera.models import User


class Command(BaseCommand):
    help = "Create the demo account if it does not exist, and print how to sign in."

    def handle(self, **options):
        username = settings.CHIMERA_DEMO_USER
        user = User.objects.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(9)
            User.objects.create_user(username=username, password=password, tier=User.Tier.PRO, is_staff=True,
                                     is_superuser=True)
            self.stdout.write(self.style.SUCCESS(f"Demo account: username {username}  password {password}"))
        else:
            self.stdout.write(f"Demo account {username!r} exists (password printed when it was created; "
                              f"reset with: manage.py changepassword {username}).")
