import os
import stat

from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _sqlite_private(sender, connection, **kwargs) -> None:
    """The embedded database holds every conversation: readable by its owner only (0600), and its
    WAL and shared-memory files with it."""
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    for path in (name, f"{name}-wal", f"{name}-shm"):
        try:
            if stat.S_IMODE(os.stat(path).st_mode) & 0o077:
                os.chmod(path, 0o600)
        except FileNotFoundError:
            continue


class ChimeraConfig(AppConfig):
    """The site: settings, URLs, ASGI routing and the `serve` command (`make run`). No models."""

    name = "chimera"

    def ready(self) -> None:
        connection_created.connect(_sqlite_private, dispatch_uid="chimera.sqlite_private")
        from chimera import middleware  # noqa: F401  (registers its system check)
