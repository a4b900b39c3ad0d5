from django.apps import AppConfig


class ToolsConfig(AppConfig):
    """The tools a model may call (the spec's ChimeraTools): registry, sandbox, the tools themselves."""

    name = "tools"
    default_auto_field = "django.db.models.BigAutoField"
