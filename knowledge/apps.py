from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    """The user's knowledge: uploaded documents and past conversations, chunked, indexed and searched."""

    name = "knowledge"
    default_auto_field = "django.db.models.BigAutoField"
