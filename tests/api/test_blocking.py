"""Blocking mode: one JSON answer when enableStreaming is off, or on request (Accept: application/json)."""

from __future__ import annotations

import pytest

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"messages": [{"role": "user", "content": "Explain photosynthesis"}]}


def check_answer(response, alice) -> dict:
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["status"] == "complete" and answer["finishReason"] == "stop" and answer["text"]
    assert answer["usage"]["totalTokens"] == answer["metadata"]["tokenCount"] > 0
    assert answer["usage"]["totalTokens"] == answer["usage"]["inputTokens"] + answer["usage"]["outputTokens"]
    assert response.headers["x-token-count"] == str(answer["usage"]["totalTokens"])
    assert response.headers["x-model-used"] == answer["metadata"]["modelUsed"]
    assert response.headers["x-trace-id"] == answer["metadata"]["traceId"]
    assert response.headers["x-gateway-cache"] == "miss"
    conversation = Conversation.objects.get(pk=answer["conversationId"], user=alice)
    assert response.headers["x-conversation-id"] == str(conversation.id)
    stored = Message.objects.get(pk=answer["id"])
    assert (stored.status, stored.content, stored.metadata["traceId"]) == (
        "complete",
        answer["text"],
        answer["metadata"]["traceId"],
    )
    assert Message.objects.filter(
        conversation=conversation, role="user", content=BODY["messages"][0]["content"]
    )
    return answer


def test_with_streaming_switched_off_it_answers_with_one_json_body(server_with, emu, http, alice, alice_key):
    server = server_with(flags={"enableStreaming": False})
    response = http.post(
        server.url + "/api/chat/v2", json=BODY, headers={"Authorization": f"Bearer {alice_key}"}
    )

    check_answer(response, alice)


def test_accept_application_json_asks_for_a_blocking_answer(live_server, emu, http, alice, alice_key):
    response = http.post(
        live_server.url + "/api/chat/v2",
        json=BODY,
        headers={"Authorization": f"Bearer {alice_key}", "Accept": "application/json"},
    )

    check_answer(response, alice)


def test_a_blocking_answer_when_every_provider_is_down_is_a_503_and_the_message_is_saved(
    live_server, emu, http, alice, alice_key
):
    emu.fault(provider="*", kind="status", status=503)
    response = http.post(
        live_server.url + "/api/chat/v2",
        json=BODY,
        headers={"Authorization": f"Bearer {alice_key}", "Accept": "application/json"},
    )

    assert response.status_code == 503
    body = response.json()
    assert body["error"]["code"] == "providers_unavailable" and body["retryable"] is True
    assert body["answer"]["status"] == "error"
    conversation_id = response.headers["x-conversation-id"]
    assert (
        Message.objects.get(conversation_id=conversation_id, role="user").content == "Explain photosynthesis"
    )
    assert Message.objects.get(conversation_id=conversation_id, role="assistant").status == "error"
