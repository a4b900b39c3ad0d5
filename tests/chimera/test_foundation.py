"""Settings, migrations, accounts and the admin, on the real services CI provides."""

from __future__ import annotations

import gc
import os

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from chat.models import Conversation, Message
from tests.conftest import PASSWORD


def test_ci_runs_against_real_postgres_and_redis(settings):
    """.ci/run sets CHIMERA_REQUIRE_SERVICES: a CI run must never quietly fall back to SQLite/memory."""
    if not os.environ.get("CHIMERA_REQUIRE_SERVICES"):
        assert connection.vendor in ("sqlite", "postgresql")
        return
    assert connection.vendor == "postgresql"
    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    # channels_redis's layer, made to ride out a Redis outage (chat/layer.py)
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "chat.layer.ResilientRedisChannelLayer"
    cache.set("chimera:ping", "pong", 5)
    assert cache.get("chimera:ping") == "pong"


@pytest.mark.django_db(transaction=True)
def test_every_migration_goes_to_zero_and_back():
    for app in ("usage", "chat", "admin", "flags", "accounts"):
        call_command("migrate", app, "zero", verbosity=0)
    executor = MigrationExecutor(connection)
    applied = {app for app, _ in executor.loader.applied_migrations}
    assert not applied & {"accounts", "flags", "chat", "usage"}
    assert "conversations" not in connection.introspection.table_names()
    call_command("migrate", verbosity=0)
    tables = connection.introspection.table_names()
    assert {"users", "conversations", "messages", "usage_metrics", "api_keys", "runtime_flags"} <= set(tables)
    assert not executor.loader.detect_conflicts()


@pytest.mark.django_db
def test_no_model_change_is_missing_a_migration():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db
def test_the_spec_indexes_exist():
    with connection.cursor() as cursor:
        names = set()
        for table in ("conversations", "messages", "usage_metrics"):
            names |= set(connection.introspection.get_constraints(cursor, table))
    assert {
        "idx_conversations_user_id",
        "idx_messages_conversation_id",
        "idx_usage_metrics_user_date",
    } <= names


@pytest.mark.django_db
def test_someone_can_sign_up_and_lands_in_the_chat(client, django_user_model):
    response = client.post(
        reverse("signup"),
        {
            "username": "carol",
            "email": "c@example.com",
            "password1": PASSWORD + "x",
            "password2": PASSWORD + "x",
        },
    )
    assert response.status_code == 302 and response.url == reverse("chat:index")
    carol = django_user_model.objects.get(username="carol")
    assert carol.tier == "free"
    assert client.get(reverse("chat:index")).status_code == 200


@pytest.mark.django_db
def test_signup_with_mismatched_passwords_says_why(client):
    response = client.post(
        reverse("signup"), {"username": "dan", "password1": PASSWORD, "password2": "other"}
    )
    assert response.status_code == 400
    assert "didn’t match" in response.content.decode() or "didn't match" in response.content.decode()


@pytest.mark.django_db
def test_the_chat_page_requires_login(client):
    response = client.get(reverse("chat:index"))
    assert response.status_code == 302 and "/accounts/login/" in response.url


@pytest.mark.django_db
def test_login_and_logout(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    page = client.get(reverse("chat:index")).content.decode()
    assert 'data-testid="chat-input"' in page and 'data-testid="send-button"' in page
    client.post(reverse("logout"))
    assert client.get(reverse("chat:index")).status_code == 302


@pytest.mark.django_db
def test_a_user_sees_only_their_own_conversations(client, alice, bob):
    mine = Conversation.objects.create(user=alice, title="Alice's plans")
    theirs = Conversation.objects.create(user=bob, title="Bob's secrets")
    client.force_login(alice)
    page = client.get(reverse("chat:index")).content.decode()
    assert "Alice&#x27;s plans" in page and "Bob" not in page
    assert client.get(reverse("chat:conversation", args=[theirs.id])).status_code == 404
    assert client.get(reverse("chat:conversation", args=[mine.id])).status_code == 200
    assert client.post(reverse("chat:fork", args=[theirs.id, theirs.id])).status_code == 404


@pytest.mark.django_db
def test_staff_review_conversations_and_usage_in_the_admin(client, staff, alice):
    conversation = Conversation.objects.create(user=alice, title="Reviewed")
    Message.objects.create(conversation=conversation, role="user", content="hello there")
    client.force_login(staff)
    for name in (
        "accounts_user",
        "chat_conversation",
        "chat_message",
        "usage_usagemetric",
        "usage_alert",
        "accounts_apikey",
        "flags_runtimeflags",
    ):
        assert client.get(reverse(f"admin:{name}_changelist")).status_code == 200, name
    page = client.get(reverse("admin:chat_conversation_change", args=[conversation.id])).content.decode()
    assert "hello there" in page
    client.force_login(alice)
    assert client.get(reverse("admin:chat_conversation_changelist")).status_code == 302


@pytest.mark.django_db
def test_the_page_says_when_the_local_model_answers(client, alice, settings):
    settings.CHIMERA_EMULATOR_URL = ""
    client.force_login(alice)
    page = client.get(reverse("chat:index")).content.decode()
    assert 'data-testid="embedded-banner"' in page and "SmolLM2-135M-Instruct" in page
    settings.GROQ_API_KEY = "gsk-test"
    assert 'data-testid="embedded-banner"' not in client.get(reverse("chat:index")).content.decode()


def test_settings_refuse_a_malformed_boolean(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from chimera.settings import envbool

    monkeypatch.setenv("X_FLAG", "yes")
    with pytest.raises(ImproperlyConfigured, match="True or False"):
        envbool("X_FLAG", False)
    monkeypatch.setenv("X_FLAG", "True")
    assert envbool("X_FLAG", False) is True


def test_the_asgi_application_starts_its_background_threads_and_freezes_what_it_loaded():
    """Every web process: the flags' and breakers' background reads run (so no turn waits on them),
    and the objects loaded at start are out of the collector's reach (full collections stay short)."""
    import threading

    import chimera.asgi  # noqa: F401 - what every server imports

    running = {t.name for t in threading.enumerate()}
    assert {"chimera-flags", "chimera-breaker-refresh"} <= running
    assert gc.get_freeze_count() > 100_000
