from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """People (with a tier) and their API keys."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"
