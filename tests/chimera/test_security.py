"""Doors and settings: password rules, throttled logins, closing sign-up, `check --deploy`, the
SQLite file's mode."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys

import pytest
from django.urls import reverse

from accounts.models import User
from tests.conftest import PASSWORD, ROOT

pytestmark = pytest.mark.django_db


def test_signup_refuses_a_weak_password_with_the_reasons(client):
    response = client.post(
        reverse("signup"), {"username": "carol", "email": "", "password1": "1234", "password2": "1234"}
    )
    page = response.content.decode()
    assert response.status_code == 400
    assert "too short" in page and "too common" in page and "entirely numeric" in page
    assert not User.objects.filter(username="carol").exists()


def test_signup_can_be_closed(client, settings):
    settings.CHIMERA_SIGNUP_OPEN = False
    strong = "a-long-enough-passphrase"
    response = client.post(
        reverse("signup"), {"username": "carol", "email": "", "password1": strong, "password2": strong}
    )
    assert response.status_code == 403 and "Sign-up is closed" in response.content.decode()
    assert not User.objects.filter(username="carol").exists()
    assert reverse("signup") not in client.get(reverse("login")).content.decode()


@pytest.mark.parametrize("door", ["login", "admin:login"])
def test_password_guessing_is_throttled_per_address_with_a_retry_time(client, alice, settings, door):
    settings.CHIMERA_LOGIN_RATE = "5/5m"
    url = reverse(door)
    statuses = [client.post(url, {"username": f"user{n}", "password": "guess"}).status_code for n in range(6)]
    assert statuses[:5] == [200] * 5  # the form again, with its error
    last = client.post(url, {"username": "alice", "password": PASSWORD})
    assert last.status_code == 429 and 0 < int(last["Retry-After"]) <= 300
    assert "Too many tries" in last.content.decode() and "_auth_user_id" not in client.session
    assert client.get(url).status_code == 200  # reading the form is never throttled


def test_guessing_one_username_from_many_addresses_is_throttled_too(client, alice, settings):
    settings.CHIMERA_LOGIN_RATE = "3/5m"
    for n in range(3):
        response = client.post(
            reverse("login"), {"username": "alice", "password": "guess"}, REMOTE_ADDR=f"10.0.0.{n}"
        )
        assert response.status_code == 200
    response = client.post(
        reverse("login"), {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.0.0.9"
    )
    assert response.status_code == 429


def test_check_deploy_is_clean_under_the_documented_production_settings():
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "chimera.settings",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "chat.example.com",
        "CHIMERA_HTTPS": "True",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_every_response_carries_the_content_security_policy(client, alice):
    client.force_login(alice)
    policy = client.get(reverse("chat:index"))["Content-Security-Policy"]
    assert (
        "script-src 'self'" in policy
        and "'unsafe-inline'" not in policy
        and "frame-ancestors 'none'" in policy
    )


def test_the_sqlite_file_is_readable_by_its_owner_only(tmp_path):
    from django.db.utils import ConnectionHandler

    path = tmp_path / "chimera.sqlite3"
    path.touch()
    path.chmod(0o644)
    databases = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}}
    wrapper = ConnectionHandler(databases)["default"]
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("CREATE TABLE t (x int)")
    finally:
        wrapper.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_deploy_check_sees_our_middleware_and_misses_none(settings):
    """Django's security.W001-W003 look for its own dotted paths; ours checks the classes instead."""
    from chimera.middleware import middleware_in_place

    assert middleware_in_place(None) == []
    settings.MIDDLEWARE = [
        m
        for m in settings.MIDDLEWARE
        if m not in ("chimera.middleware.Csrf", "chimera.middleware.FrameOptions")
    ]
    assert sorted(w.id for w in middleware_in_place(None)) == [
        "chimera.security.W002",
        "chimera.security.W003",
    ]
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.middleware.csrf.CsrfViewMiddleware",
    ]  # Django's own counts
    assert [w.id for w in middleware_in_place(None)] == ["chimera.security.W002"]
