from django.apps import AppConfig


class ChimeraConfig(AppConfig):
    """The site: settings, URLs, ASGI routing and the `serve` command (`make run`). No models."""

    name = "chimera"
