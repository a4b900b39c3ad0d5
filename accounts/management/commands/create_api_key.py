from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.apikeys import create_api_key
from accounts.models import User


class Command(BaseCommand):
    help = "Create an API key for a user and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")

    def handle(self, username, name, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        _, raw = create_api_key(user, name)
        self.stdout.write(raw)
