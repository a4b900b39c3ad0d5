from django.apps import AppConfig


class ChimeraConfig(AppConfig):
    name = "chimera"
    default_auto_field = "django.db.models.BigAutoField"
