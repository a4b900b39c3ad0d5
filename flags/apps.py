from django.apps import AppConfig


class FlagsConfig(AppConfig):
    """The runtime flags (the spec's Edge Config): switches for instant rollback."""

    name = "flags"
    verbose_name = "Runtime flags"
    default_auto_field = "django.db.models.BigAutoField"
