"""API keys: made on the settings page, by the command and by the API; shown once, hashed, listed, revocable."""

from __future__ import annotations

import hashlib
import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import ApiKey
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_the_settings_page_creates_a_key_and_shows_it_once(live_server, http, alice):
    client = signed_in(alice)
    page = client.post("/accounts/settings/", {"name": "laptop"}).content.decode()

    raw = re.search(r"(chk_[\w-]+)", page).group(1)
    key = ApiKey.objects.get(user=alice)
    assert key.name == "laptop" and key.hashed_key == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(ApiKey.objects.values_list())  # only the hash is stored
    later = client.get("/accounts/settings/").content.decode()
    assert raw not in later and key.prefix in later and "laptop" in later
    response = http.get(live_server.url + "/api/conversations", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 200


def test_the_settings_page_revokes_a_key(live_server, http, alice):
    client = signed_in(alice)
    raw = re.search(
        r"(chk_[\w-]+)", client.post("/accounts/settings/", {"name": "old"}).content.decode()
    ).group(1)
    key = ApiKey.objects.get(user=alice)

    client.post("/accounts/settings/", {"revoke": str(key.id)})

    key.refresh_from_db()
    assert key.revoked_at is not None
    assert "revoked" in client.get("/accounts/settings/").content.decode()
    response = http.get(live_server.url + "/api/conversations", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 401


def test_a_tampered_revoke_form_is_not_a_server_error(alice):
    client = signed_in(alice)

    response = client.post("/accounts/settings/", {"revoke": "not-a-uuid"})

    assert response.status_code == 302


def test_one_user_cannot_revoke_anothers_key(alice, bob, bob_key):
    client = signed_in(alice)
    client.post("/accounts/settings/", {"revoke": str(ApiKey.objects.get(user=bob).id)})

    assert ApiKey.objects.get(user=bob).revoked_at is None


def test_the_command_prints_a_working_key_once(live_server, http, alice):
    out = io.StringIO()
    call_command("create_api_key", "alice", "--name", "ci", stdout=out)

    raw = out.getvalue().strip()
    assert raw.startswith("chk_") and ApiKey.objects.get(user=alice, name="ci").prefix == raw[:12]
    response = http.get(live_server.url + "/api/conversations", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 200


def test_the_command_refuses_an_unknown_user(db):
    with pytest.raises(CommandError):
        call_command("create_api_key", "nobody", stdout=io.StringIO())


def test_the_api_lists_creates_and_revokes_keys(live_server, http, alice, alice_key, bob_key):
    auth = {"Authorization": f"Bearer {alice_key}"}
    created = signed_in(alice).post("/api/keys", {"name": "script"}, content_type="application/json")
    assert created.status_code == 201
    new = created.json()
    assert new["key"].startswith("chk_") and new["name"] == "script"

    listed = http.get(live_server.url + "/api/keys", headers=auth).json()
    assert {k["name"] for k in listed} == {"tests", "script"}
    assert all("key" not in k and "hashed_key" not in k for k in listed)

    bobs = ApiKey.objects.get(user__username="bob")
    assert http.delete(f"{live_server.url}/api/keys/{bobs.id}", headers=auth).status_code == 404
    assert http.delete(f"{live_server.url}/api/keys/{new['id']}", headers=auth).status_code == 204
    assert (
        http.get(live_server.url + "/api/keys", headers={"Authorization": f"Bearer {new['key']}"}).status_code
        == 401
    )


def test_an_api_key_cannot_mint_api_keys(live_server, http, alice, alice_key):
    response = http.post(
        live_server.url + "/api/keys",
        json={"name": "spare"},
        headers={"Authorization": f"Bearer {alice_key}"},
    )
    assert response.status_code == 403
    assert "cannot create API keys" in response.json()["error"]["message"]
    assert list(ApiKey.objects.filter(user=alice).values_list("name", flat=True)) == ["tests"]
