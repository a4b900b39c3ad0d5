"""Who may call the API: Bearer API keys for programs, the session with CSRF for the page."""

from __future__ import annotations

import pytest

from accounts.apikeys import revoke
from accounts.models import ApiKey
from tests.api.helpers import chat, text_of

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"messages": [{"role": "user", "content": "Hello"}]}


def test_without_credentials_it_is_a_401_with_a_bearer_challenge(live_server, http):
    for method, path in (("POST", "/api/chat/v2"), ("GET", "/api/conversations"), ("GET", "/api/keys")):
        response = http.request(method, live_server.url + path, json=BODY if method == "POST" else None)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "not_authenticated"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_unknown_or_malformed_key_is_a_401(live_server, http, alice):
    for header, code in (
        ("Bearer chk_not-a-real-key", "invalid_api_key"),
        ("Bearer nonsense", "invalid_api_key"),
        ("Basic YWxpY2U6cHc=", "invalid_authorization"),
        ("Bearer", "invalid_authorization"),
    ):
        response = http.post(live_server.url + "/api/chat/v2", json=BODY, headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.json()["error"]["code"] == code, header


def test_a_revoked_key_stops_working_at_once(live_server, emu, http, alice, alice_key):
    assert chat(http, live_server.url, BODY, alice_key)[0].status_code == 200
    revoke(alice, ApiKey.objects.get(user=alice).id)

    response = http.post(
        live_server.url + "/api/chat/v2", json=BODY, headers={"Authorization": f"Bearer {alice_key}"}
    )

    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_a_key_of_a_deactivated_user_is_refused(live_server, http, alice, alice_key):
    alice.is_active = False
    alice.save()

    response = http.get(
        live_server.url + "/api/conversations", headers={"Authorization": f"Bearer {alice_key}"}
    )

    assert response.status_code == 401


def test_a_key_marks_when_it_was_last_used(live_server, http, alice, alice_key):
    http.get(live_server.url + "/api/conversations", headers={"Authorization": f"Bearer {alice_key}"})

    assert ApiKey.objects.get(user=alice).last_used_at is not None


def test_a_session_post_without_the_csrf_token_is_a_403(alice_session, live_server):
    browser, _ = alice_session
    response = browser.post("/api/chat/v2", json=BODY)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"


def test_a_session_with_the_csrf_token_streams_an_answer(alice_session, live_server, emu, alice):
    browser, csrf = alice_session
    response, parts = chat(browser, "", BODY, headers={"X-CSRFToken": csrf})

    assert response.status_code == 200
    assert text_of(parts)


def test_a_session_may_read_without_a_csrf_token(alice_session, live_server):
    browser, _ = alice_session
    response = browser.get("/api/conversations")

    assert response.status_code == 200 and response.json()["items"] == []


def test_a_bad_key_is_refused_even_with_a_valid_session(alice_session, live_server):
    browser, csrf = alice_session
    response = browser.get(
        "/api/conversations", headers={"Authorization": "Bearer chk_wrong", "X-CSRFToken": csrf}
    )

    assert response.status_code == 401


def test_the_chat_endpoint_looks_its_key_up_before_it_reads_or_stores_anything(
    live_server, emu, http, alice, alice_key
):
    from chat.models import Conversation, Message

    mine = chat(http, live_server.url, {"id": "kept-chat", **BODY}, alice_key)[0]
    assert mine.status_code == 200
    messages = Message.objects.count()
    revoke(alice, ApiKey.objects.get(user=alice).id)
    bad = {"Authorization": f"Bearer {alice_key}"}

    for body in (BODY, {"id": "kept-chat", **BODY}, {"id": "new-chat", **BODY}):
        response = http.post(live_server.url + "/api/chat/v2", json=body, headers=bad)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key", body
    # Its body is checked first (django-ninja validates between its auth hook and the view; the
    # key is looked up in the job that saves the message): a 422, and still nothing stored.
    response = http.post(live_server.url + "/api/chat/v2", json={"messages": "no"}, headers=bad)
    assert response.status_code == 422

    assert Message.objects.count() == messages
    assert Conversation.objects.filter(user=alice).count() == 1
