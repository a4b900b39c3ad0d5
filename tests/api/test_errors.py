"""Bad input gets a JSON error naming what is wrong, with the right status; never a 500."""

from __future__ import annotations

import json
import uuid

import pytest

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

USER = {"role": "user", "content": "Hello"}

# (what is wrong, body, status, error code, field)
BAD_BODIES = [
    (
        "a system message over the message limit",
        {"messages": [{"role": "system", "content": "s" * 32_001}, USER]},
        413,
        "message_too_long",
        "messages[0].content",
    ),
    (
        "an earlier message over the message limit",
        {
            "messages": [
                {"role": "user", "content": "u" * 32_001},
                {"role": "assistant", "content": "a"},
                USER,
            ]
        },
        413,
        "message_too_long",
        "messages[0].content",
    ),
    (
        "unknown tier",
        {"messages": [USER], "config": {"model": "huge"}},
        422,
        "validation_error",
        "config.model",
    ),
    (
        "temperature above 2",
        {"messages": [USER], "config": {"temperature": 2.5}},
        422,
        "validation_error",
        "config.temperature",
    ),
    (
        "temperature below 0",
        {"messages": [USER], "config": {"temperature": -0.1}},
        422,
        "validation_error",
        "config.temperature",
    ),
    (
        "temperature not a number",
        {"messages": [USER], "config": {"temperature": "warm"}},
        422,
        "validation_error",
        "config.temperature",
    ),
    (
        "maxTokens 0",
        {"messages": [USER], "config": {"maxTokens": 0}},
        422,
        "validation_error",
        "config.maxTokens",
    ),
    (
        "maxTokens above 4000",
        {"messages": [USER], "config": {"maxTokens": 4001}},
        422,
        "validation_error",
        "config.maxTokens",
    ),
    (
        "maxTokens a fraction",
        {"messages": [USER], "config": {"maxTokens": 10.5}},
        422,
        "validation_error",
        "config.maxTokens",
    ),
    (
        "unknown tool",
        {"messages": [USER], "config": {"tools": ["rm -rf"]}},
        422,
        "validation_error",
        "config.tools[0]",
    ),
    (
        "includeHistory not a boolean",
        {"messages": [USER], "context": {"includeHistory": "maybe"}},
        422,
        "validation_error",
        "context.includeHistory",
    ),
    (
        "sessionData not an object",
        {"messages": [USER], "context": {"sessionData": [1]}},
        422,
        "validation_error",
        "context.sessionData",
    ),
    ("no messages field", {"config": {}}, 422, "validation_error", "messages"),
    ("empty messages", {"messages": []}, 422, "validation_error", "messages"),
    ("messages not a list", {"messages": "hi"}, 422, "validation_error", "messages"),
    (
        "unknown role",
        {"messages": [{"role": "robot", "content": "x"}]},
        422,
        "validation_error",
        "messages[0].role",
    ),
    (
        "content not a string",
        {"messages": [{"role": "user", "content": 42}]},
        422,
        "validation_error",
        "messages[0].content",
    ),
    (
        "neither content nor parts",
        {"messages": [{"role": "user"}]},
        422,
        "validation_error",
        "messages[0].content",
    ),
    (
        "last message from the assistant",
        {"messages": [USER, {"role": "assistant", "content": "Hi"}]},
        422,
        "last_message_not_user",
        "messages[1].role",
    ),
    (
        "empty content",
        {"messages": [{"role": "user", "content": "   "}]},
        400,
        "empty_message",
        "messages[0].content",
    ),
    (
        "content over the limit",
        {"messages": [{"role": "user", "content": "x" * 32_001}]},
        413,
        "message_too_long",
        "messages[0].content",
    ),
    (
        "conversationId not a UUID",
        {"messages": [USER], "conversationId": "abc"},
        422,
        "validation_error",
        "conversationId",
    ),
    (
        "dataParts not objects",
        {"messages": [{"role": "user", "content": "x", "dataParts": ["chart"]}]},
        422,
        "validation_error",
        "messages[0].dataParts[0]",
    ),
    ("body a list, not an object", [USER], 422, "validation_error", "messages"),
    (
        "more messages than one request may carry",
        {"messages": [USER] * 501},
        422,
        "validation_error",
        "messages",
    ),
    (
        "a model tier the free plan does not include",
        {"messages": [USER], "config": {"model": "reasoning"}},
        403,
        "tier_not_allowed",
        "config.model",
    ),
]


def test_each_constrained_field_is_validated_with_an_error_naming_it(live_server, http, alice, alice_key):
    headers = {"Authorization": f"Bearer {alice_key}"}
    for what, body, status, code, field in BAD_BODIES:
        response = http.post(live_server.url + "/api/chat/v2", json=body, headers=headers)
        assert response.status_code == status, (what, response.text)
        error = response.json()["error"]
        assert (error["code"], error.get("field")) == (code, field), (what, error)
        assert error["message"], what
    assert not Conversation.objects.exists()  # nothing was stored for any of them


def test_malformed_json_is_a_400_in_json(live_server, http, alice, alice_key):
    response = http.post(
        live_server.url + "/api/chat/v2",
        content=b'{"messages": [',
        headers={"Authorization": f"Bearer {alice_key}", "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "malformed_json",
        "message": "The request body is not valid JSON.",
        "field": "body",
    }


def test_a_body_over_the_upload_limit_is_a_413_in_json(live_server, http, alice, alice_key):
    body = {"messages": [{"role": "user", "content": "x" * 1_100_000}]}
    response = http.post(
        live_server.url + "/api/chat/v2", json=body, headers={"Authorization": f"Bearer {alice_key}"}
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_another_users_conversation_is_a_404_everywhere(live_server, http, alice, bob, alice_key):
    theirs = Conversation.objects.create(user=bob, title="Bob's")
    message = Message.objects.create(conversation=theirs, role="user", content="Bob's secret")
    auth = {"Authorization": f"Bearer {alice_key}"}
    base = f"{live_server.url}/api/conversations/{theirs.id}"

    requests = [
        ("POST", live_server.url + "/api/chat/v2", {"conversationId": str(theirs.id), "messages": [USER]}),
        ("POST", live_server.url + "/api/chat/v2", {"id": str(theirs.id), "messages": [USER]}),
        ("GET", base, None),
        ("PATCH", base, {"title": "Mine now"}),
        ("DELETE", base, None),
        ("POST", base + "/fork", {"messageId": str(message.id)}),
        ("POST", base + "/branch", {"messageId": str(message.id)}),
        ("POST", f"{base}/messages/{message.id}/edit", {"content": "changed"}),
        ("POST", f"{base}/messages/{message.id}/regenerate", {}),
        ("POST", f"{base}/messages/{message.id}/stop", None),
        ("GET", f"{base}/messages/{message.id}/stream", None),
        ("GET", f"{live_server.url}/api/chat/v2/{theirs.id}/stream", None),
    ]
    for method, url, body in requests:
        response = http.request(method, url, json=body, headers=auth)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["error"]["code"] == "not_found"
    theirs.refresh_from_db()
    assert theirs.title == "Bob's" and Message.objects.filter(conversation=theirs).count() == 1


def test_an_unknown_conversation_id_is_a_404_and_a_bad_one_a_422(live_server, http, alice, alice_key):
    auth = {"Authorization": f"Bearer {alice_key}"}
    missing = http.post(
        live_server.url + "/api/chat/v2",
        headers=auth,
        json={"conversationId": str(uuid.uuid4()), "messages": [USER]},
    )
    bad = http.get(live_server.url + "/api/conversations/not-a-uuid", headers=auth)

    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "conversation_id"


def test_the_rate_limit_is_a_429_with_retry_after(server_with, http, alice, alice_key):
    server = server_with(env={"CHIMERA_RATE_LIMIT_FREE": "2"})
    auth = {"Authorization": f"Bearer {alice_key}", "Accept": "application/json"}
    for _ in range(2):
        assert (
            http.post(server.url + "/api/chat/v2", json={"messages": [USER]}, headers=auth).status_code == 200
        )

    response = http.post(server.url + "/api/chat/v2", json={"messages": [USER]}, headers=auth)

    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 86400  # the quota window: a day
    assert response.headers["X-RateLimit-Remaining"] == "0" and response.headers["X-RateLimit-Limit"] == "2"
    error = response.json()["error"]
    assert error["code"] == "rate_limited" and "try again in" in error["message"]


def test_the_openapi_document_and_docs_page_are_served(live_server, http):
    schema = http.get(live_server.url + "/api/openapi.json")
    docs = http.get(live_server.url + "/api/docs")

    assert schema.status_code == 200 and docs.status_code == 200
    assert "cdn" not in docs.text.lower()  # Swagger UI comes from ninja's own static files
    assert http.get(live_server.url + "/static/ninja/swagger-ui-bundle.js").status_code == 200
    paths = schema.json()["paths"]
    assert "/api/chat/v2" in paths and "/api/conversations/{conversation_id}" in paths
    schemes = schema.json()["components"]["securitySchemes"]
    assert {"ApiKeyAuth", "SessionCsrfAuth"} <= set(schemes)


# Text no database can store, wherever a client can put it: (what, method, path, body, field).
NUL, SURROGATE = "a\u0000b", "a\ud800b"
UNSTORABLE = [
    (
        "NUL in a message",
        "POST",
        "/api/chat/v2",
        {"messages": [{"role": "user", "content": NUL}]},
        "messages[0].content",
    ),
    (
        "unpaired surrogate",
        "POST",
        "/api/chat/v2",
        {"messages": [{"role": "user", "content": SURROGATE}]},
        "messages[0].content",
    ),
    (
        "NUL in history",
        "POST",
        "/api/chat/v2",
        {"messages": [{"role": "system", "content": NUL}, USER]},
        "messages[0].content",
    ),
    (
        "NUL in a key",
        "POST",
        "/api/chat/v2",
        {"messages": [USER], "context": {"sessionData": {NUL: 1}}},
        "context.sessionData",
    ),
    ("NUL in a title", "PATCH", "/api/conversations/{id}", {"title": NUL}, "title"),
    ("NUL in a search", "GET", "/api/conversations?q=%00", None, "q"),
    ("surrogate in a key name", "POST", "/api/keys", {"name": SURROGATE}, "name"),
]


def test_text_no_database_can_store_is_a_422_naming_the_field(live_server, http, alice, alice_key):
    conversation = Conversation.objects.create(user=alice, title="Mine")
    auth = {"Authorization": f"Bearer {alice_key}", "Content-Type": "application/json"}
    for what, method, path, body, field in UNSTORABLE:
        url = live_server.url + path.format(id=conversation.id)
        content = None if body is None else json.dumps(body).encode()  # "\u0000", "\ud800" escapes
        response = http.request(method, url, content=content, headers=auth)
        assert response.status_code == 422, (what, response.text)  # before any other check
        error = response.json()["error"]
        assert error["code"] == "invalid_text" and error["field"] == field, (what, error)
        assert "cannot be stored" in error["message"] or "not a character" in error["message"], what
    conversation.refresh_from_db()
    assert conversation.title == "Mine" and not Message.objects.exists()


def test_huge_numbers_are_a_422_not_a_500(live_server, http, alice, alice_key):
    auth = {"Authorization": f"Bearer {alice_key}"}
    listed = http.get(live_server.url + "/api/conversations?offset=100000000000000000000", headers=auth)
    assert listed.status_code == 422 and listed.json()["error"]["field"] == "offset"
    for config in ({"maxTokens": 10**30}, {"temperature": 1e308}):
        response = http.post(
            live_server.url + "/api/chat/v2", json={"messages": [USER], "config": config}, headers=auth
        )
        assert response.status_code == 422, (config, response.text)
    assert not Conversation.objects.exists()
