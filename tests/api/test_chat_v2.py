"""POST /api/chat/v2 against a live daphne and the provider emulator, read part by part."""

from __future__ import annotations

import json
import uuid

import pytest

from chat.api import streams
from chat.models import Conversation, Message
from tests.api.helpers import DONE, chat, metadata_of, text_of, types, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SPEC_BODY = {"messages": [{"role": "user", "content": "Explain quantum computing"}]}


def answer_of(conversation_id) -> Message:
    return Message.objects.get(conversation_id=conversation_id, role="assistant")


def test_it_streams_an_answer_in_the_ui_message_stream_protocol(live_server, emu, http, alice, alice_key):
    response, parts = chat(http, live_server.url, SPEC_BODY, alice_key)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    kinds = types(parts)
    assert kinds[:3] == ["start", "start-step", "text-start"]
    assert kinds[-5:] == ["text-end", "message-metadata", "finish-step", "finish", DONE]
    assert set(kinds[3:-5]) == {"text-delta"}
    text_ids = {p["id"] for p in parts if isinstance(p, dict) and p["type"].startswith("text-")}
    assert len(text_ids) == 1
    assert parts[-2] == {"type": "finish", "finishReason": "stop"}
    assert parts[0]["messageId"] == response.headers["x-message-id"]
    assert len(text_of(parts)) > 40


def test_it_sends_the_spec_headers_and_the_final_counts_in_message_metadata(
    live_server, emu, http, alice, alice_key
):
    response, parts = chat(http, live_server.url, SPEC_BODY, alice_key)

    conversation_id = response.headers["x-conversation-id"]
    metadata = metadata_of(parts)
    assert uuid.UUID(conversation_id)
    assert uuid.UUID(response.headers["x-trace-id"]) and metadata["traceId"] == response.headers["x-trace-id"]
    assert response.headers["x-model-used"] == metadata["modelUsed"]
    assert response.headers["x-gateway-cache"] == "miss" == metadata["gatewayCache"]
    assert "x-token-count" not in response.headers  # unknown before the body for a live answer
    assert metadata["sessionId"] == conversation_id
    assert metadata["status"] == "complete"
    assert metadata["tokenCount"] == metadata["inputTokens"] + metadata["outputTokens"] > 0
    assert metadata["provider"] and metadata["timestamp"] and metadata["latency"] >= 0


def test_it_persists_the_conversation_and_both_messages_of_the_spec_form(
    live_server, emu, http, alice, alice_key
):
    body = {
        "messages": [
            {
                "role": "user",
                "content": "Tell me about tides",
                "dataParts": [{"type": "markdown", "content": "**tides**", "enhanced": True}],
            }
        ],
        "config": {"model": "fast", "temperature": 0.2, "maxTokens": 300},
    }
    response, parts = chat(http, live_server.url, body, alice_key)

    conversation = Conversation.objects.get(pk=response.headers["x-conversation-id"])
    assert conversation.user == alice and conversation.title == "Tell me about tides"
    user_message, answer = conversation.messages.order_by("created_at")
    assert (user_message.role, user_message.content, user_message.status) == (
        "user",
        "Tell me about tides",
        "complete",
    )
    assert user_message.data_parts == [{"type": "markdown", "content": "**tides**", "enhanced": True}]
    assert answer.parent_message_id == user_message.id and str(answer.id) == response.headers["x-message-id"]
    assert (answer.status, answer.content) == ("complete", text_of(parts))
    assert answer.metadata["tier"] == "fast" and answer.metadata["traceId"] == response.headers["x-trace-id"]
    assert conversation.active_leaf_id == answer.id


def test_it_persists_the_ai_sdk_uimessage_form_and_keeps_one_conversation_per_chat_id(
    live_server, emu, http, alice, alice_key
):
    first = {
        "id": "chat-abc",
        "trigger": "submit-message",
        "messageId": None,
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "What is a comet?"}]}],
    }
    response, parts = chat(http, live_server.url, first, alice_key)
    assert response.status_code == 200
    conversation_id = response.headers["x-conversation-id"]
    answer_id = parts[0]["messageId"]

    second = {
        "id": "chat-abc",
        "trigger": "submit-message",
        "messages": [
            *first["messages"],
            {"id": answer_id, "role": "assistant", "parts": [{"type": "text", "text": text_of(parts)}]},
            {
                "id": "u2",
                "role": "user",
                "parts": [
                    {"type": "text", "text": "And "},
                    {"type": "text", "text": "a meteor?"},
                    {"type": "data-markdown", "data": {"content": "**meteor**", "enhanced": True}},
                ],
            },
        ],
    }
    response2, parts2 = chat(http, live_server.url, second, alice_key)

    assert response2.headers["x-conversation-id"] == conversation_id
    messages = list(Message.objects.filter(conversation_id=conversation_id).order_by("created_at"))
    assert [(m.role, m.content) for m in messages] == [
        ("user", "What is a comet?"),
        ("assistant", text_of(parts)),
        ("user", "And a meteor?"),
        ("assistant", text_of(parts2)),
    ]
    assert [m.parent_message_id for m in messages] == [None, messages[0].id, messages[1].id, messages[2].id]
    assert messages[2].data_parts == [{"type": "markdown", "content": "**meteor**", "enhanced": True}]
    assert parts[0]["messageId"] == str(messages[1].id)  # the client's copy carries our id


def test_it_stores_the_history_a_client_sends_when_it_starts_a_conversation(
    live_server, emu, http, alice, alice_key
):
    body = {
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Name a planet"},
            {"role": "assistant", "content": "Mars."},
            {"role": "user", "content": "Another one"},
        ]
    }
    response, _ = chat(http, live_server.url, body, alice_key)

    messages = Message.objects.filter(conversation_id=response.headers["x-conversation-id"]).order_by(
        "created_at"
    )
    assert [(m.role, m.content) for m in messages][:3] == [
        ("user", "Name a planet"),
        ("assistant", "Mars."),
        ("user", "Another one"),
    ]
    sent = emu.requests()[-1]
    assert "Answer briefly." in str(sent) and "Mars." in str(sent)


def test_it_continues_a_conversation_by_id_and_sends_its_history(live_server, emu, http, alice, alice_key):
    response, _ = chat(http, live_server.url, SPEC_BODY, alice_key)
    conversation_id = response.headers["x-conversation-id"]
    body = {
        "conversationId": conversation_id,
        "messages": [{"role": "user", "content": "Say more about qubits"}],
    }

    response2, parts = chat(http, live_server.url, body, alice_key)

    assert response2.status_code == 200 and response2.headers["x-conversation-id"] == conversation_id
    assert Message.objects.filter(conversation_id=conversation_id).count() == 4
    assert "Explain quantum computing" in str(emu.requests()[-1])


def test_it_answers_from_the_cache_with_the_token_count_in_the_headers(
    live_server, emu, http, alice, alice_key
):
    chat(http, live_server.url, SPEC_BODY, alice_key)

    response, parts = chat(http, live_server.url, SPEC_BODY, alice_key)

    metadata = metadata_of(parts)
    assert response.headers["x-gateway-cache"] == "hit" == metadata["gatewayCache"]
    assert response.headers["x-token-count"] == str(metadata["tokenCount"])
    assert text_of(parts)


def test_a_client_that_disconnects_mid_answer_still_gets_the_full_answer_saved(
    live_server, emu, http, alice, alice_key
):
    emu.timing(provider="*", ttft_ms=5, chunk_ms=25, chunks=60)
    with http.stream(
        "POST",
        live_server.url + "/api/chat/v2",
        json=SPEC_BODY,
        headers={"Authorization": f"Bearer {alice_key}"},
    ) as response:
        conversation_id = response.headers["x-conversation-id"]
        for line in response.iter_lines():
            if '"text-delta"' in line:
                break
    # The connection is closed here, a second or so before the answer ends.

    answer = wait_for(
        lambda: (
            Message.objects.filter(conversation_id=conversation_id, role="assistant")
            .exclude(status="streaming")
            .first()
        )
    )
    assert answer.status == "complete"
    assert len(answer.content.split()) >= 50
    assert answer.metadata["finishReason"] == "stop"


def test_it_streams_reasoning_parts_for_the_reasoning_tier(live_server, emu, http, alice, alice_key):
    alice.tier = "pro"
    alice.save()
    body = {**SPEC_BODY, "config": {"model": "reasoning"}}
    response, parts = chat(http, live_server.url, body, alice_key)

    kinds = types(parts)
    assert (
        kinds.index("reasoning-start")
        < kinds.index("reasoning-delta")
        < kinds.index("reasoning-end")
        < kinds.index("text-start")
    )
    reasoning = "".join(p["delta"] for p in parts if isinstance(p, dict) and p["type"] == "reasoning-delta")
    answer = answer_of(response.headers["x-conversation-id"])
    assert answer.data_parts[0] == {"type": "thinking", "content": reasoning}


def test_a_provider_switch_mid_answer_is_a_data_part_and_the_text_continues(
    live_server, emu, http, alice, alice_key
):
    emu.fault(provider="groq", kind="cut", after_tokens=8, abort=True, times=10)
    response, parts = chat(http, live_server.url, {**SPEC_BODY, "config": {"model": "balanced"}}, alice_key)

    switches = [p for p in parts if isinstance(p, dict) and p["type"] == "data-provider-switch"]
    assert switches, types(parts)
    switch = switches[0]["data"]
    assert switch["fromProvider"] == "groq" and switch["mode"] == "continue" and "discardTextId" not in switch
    answer = answer_of(response.headers["x-conversation-id"])
    assert answer.status == "complete" and answer.content == text_of(parts)
    assert metadata_of(parts)["switches"][0]["fromProvider"] == "groq"


def test_a_tool_call_runs_streams_as_ai_sdk_tool_parts_and_is_saved(live_server, emu, http, alice, alice_key):
    from knowledge.index import add_document

    add_document(alice, "comets.md", b"# Comets\n\nHalley's Comet returns every 76 years.")
    directive = json.dumps({"query": "Halley comet", "k": 2})
    body = {
        "messages": [{"role": "user", "content": f"Find it [[tool:searchKnowledge {directive}]]"}],
        "config": {"tools": ["searchKnowledge"]},
    }
    response, parts = chat(http, live_server.url, body, alice_key)

    kinds = types(parts)
    order = [kinds.index(k) for k in ("tool-input-start", "tool-input-available", "tool-output-available")]
    assert order == sorted(order)
    assert kinds.index("tool-output-available") < kinds.index("finish-step") < kinds.index("start-step", 2)
    available = next(p for p in parts if isinstance(p, dict) and p["type"] == "tool-input-available")
    assert available["toolName"] == "searchKnowledge" and available["input"] == {
        "query": "Halley comet",
        "k": 2,
    }
    output = next(p for p in parts if isinstance(p, dict) and p["type"] == "tool-output-available")
    assert "76 years" in json.dumps(output["output"])
    statuses = [p["data"]["status"] for p in parts if isinstance(p, dict) and p["type"] == "data-tool-call"]
    assert statuses == ["pending", "running", "success"]
    assert any(isinstance(p, dict) and p["type"] == "source-document" for p in parts)
    assert parts[-2] == {"type": "finish", "finishReason": "stop"}
    assert "Tool results:" in text_of(parts) and "76 years" in text_of(parts)
    answer = answer_of(response.headers["x-conversation-id"])
    assert answer.status == "complete"
    [call] = answer.tool_invocations
    assert call["toolName"] == "searchKnowledge" and call["status"] == "success"
    assert any(
        t.get("function", t).get("name") == "searchKnowledge" for t in emu.requests()[-1]["body"]["tools"]
    )


def test_when_every_provider_is_down_it_streams_an_error_part_then_done_and_saves_the_message(
    live_server, emu, http, alice, alice_key
):
    emu.fault(provider="*", kind="status", status=503)
    response, parts = chat(http, live_server.url, SPEC_BODY, alice_key)

    assert response.status_code == 200
    kinds = types(parts)
    assert kinds[-4:] == ["error", "finish-step", "finish", DONE]
    assert "data-error" in kinds
    assert parts[-2]["finishReason"] == "error"
    error = next(p for p in parts if isinstance(p, dict) and p["type"] == "error")
    assert "unavailable" in error["errorText"]
    user_message = Message.objects.get(conversation_id=response.headers["x-conversation-id"], role="user")
    assert user_message.content == "Explain quantum computing"
    assert answer_of(response.headers["x-conversation-id"]).status == "error"


def test_when_every_provider_dies_mid_answer_the_partial_text_is_saved(
    live_server, emu, http, alice, alice_key
):
    emu.timing(provider="*", ttft_ms=5, chunk_ms=5, chunks=40)
    emu.fault(provider="*", kind="cut", after_tokens=5, abort=True)
    response, parts = chat(http, live_server.url, SPEC_BODY, alice_key)

    answer = answer_of(response.headers["x-conversation-id"])
    assert answer.status == "incomplete" and answer.content and answer.content == text_of(parts)
    assert types(parts)[-4:] == ["error", "finish-step", "finish", DONE]


def test_a_failure_before_the_first_token_is_invisible_and_the_headers_name_the_model_that_answered(
    live_server, emu, http, alice, alice_key
):
    emu.fault(provider="groq", kind="status", status=503, times=10)
    response, parts = chat(http, live_server.url, SPEC_BODY, alice_key)

    metadata = metadata_of(parts)
    assert metadata["provider"] != "groq" and metadata["status"] == "complete"
    # Named only when known by the time the headers went out (a slow failover leaves it out).
    assert response.headers.get("x-model-used", metadata["modelUsed"]) == metadata["modelUsed"]
    assert "data-provider-switch" not in types(parts) and "error" not in types(parts)


def test_headers_sent_before_any_model_answered_do_not_name_one(live_server, emu, http, alice, alice_key):
    # Groq takes longer than the headers wait for: when they go out nobody has answered yet.
    emu.timing(provider="groq", ttft_ms=int(streams.HEADER_WAIT_S * 1000) + 1500)
    response, parts = chat(http, live_server.url, SPEC_BODY, alice_key)

    metadata = metadata_of(parts)
    assert metadata["status"] == "complete" and metadata["provider"] == "groq"
    assert "x-model-used" not in response.headers  # unknown then; the metadata part names it
    assert response.headers["x-message-id"] == parts[0]["messageId"]  # what is known is there


def test_include_history_false_sends_only_the_new_message(live_server, emu, http, alice, alice_key):
    response, _ = chat(
        http,
        live_server.url,
        {"messages": [{"role": "user", "content": "First topic: volcanoes"}]},
        alice_key,
    )
    body = {
        "conversationId": response.headers["x-conversation-id"],
        "messages": [{"role": "user", "content": "Second topic: glaciers"}],
        "context": {"includeHistory": False},
    }
    chat(http, live_server.url, body, alice_key)

    sent = str(emu.requests()[-1]["body"])
    assert "glaciers" in sent and "volcanoes" not in sent


def test_the_ai_sdk_regenerate_trigger_makes_a_sibling_answer(live_server, emu, http, alice, alice_key):
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "What is a comet?"}]}
    _, parts = chat(
        http,
        live_server.url,
        {"id": "chat-regen", "trigger": "submit-message", "messages": [user]},
        alice_key,
    )
    first_answer = parts[0]["messageId"]

    body = {
        "id": "chat-regen",
        "trigger": "regenerate-message",
        "messageId": first_answer,
        "messages": [user],
    }
    response, parts2 = chat(http, live_server.url, body, alice_key)

    second = Message.objects.get(pk=parts2[0]["messageId"])
    first = Message.objects.get(pk=first_answer)
    assert second.id != first.id and second.parent_message_id == first.parent_message_id
    assert Message.objects.filter(conversation_id=second.conversation_id, role="user").count() == 1
    assert Conversation.objects.get(pk=second.conversation_id).active_leaf_id == second.id
    assert second.content == text_of(parts2)


def test_parallel_sends_to_one_conversation_never_fork_it_unseen(live_server, emu, http, alice, alice_key):
    import threading

    import httpx2

    first, _ = chat(http, live_server.url, {"messages": [{"role": "user", "content": "Hi"}]}, alice_key)
    conversation_id = first.headers["x-conversation-id"]
    emu.timing(provider="*", ttft_ms=5000)  # each answer stays in progress while the others arrive
    start = threading.Barrier(4)
    outcomes: list[tuple[int, dict]] = []

    def send(n: int) -> None:
        body = {"conversationId": conversation_id, "messages": [{"role": "user", "content": f"Question {n}"}]}
        with httpx2.Client(timeout=60) as client:
            start.wait()
            response, parts = chat(client, live_server.url, body, alice_key)
            outcomes.append((response.status_code, response.json() if not parts else {}))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    statuses = sorted(status for status, _ in outcomes)
    assert statuses[0] == 200 and 409 in statuses and set(statuses) <= {200, 409}, outcomes
    for status, body in outcomes:
        if status == 409:
            assert (
                body["error"]["code"] == "conversation_busy"
                and "still being written" in body["error"]["message"]
            )
    # Whatever got through is one chain: no message has two children, nothing a 409 sent was stored.
    messages = list(Message.objects.filter(conversation_id=conversation_id))
    parents = [m.parent_message_id for m in messages]
    assert len(parents) == len(set(parents))
    assert sum(m.role == "user" for m in messages) == 1 + statuses.count(200)


def test_the_system_prompt_counts_against_the_history_budget(live_server, emu, http, alice, alice_key):
    long = 29_000
    messages = [
        {"role": "system", "content": "S" * long},
        {"role": "user", "content": "oldest " + "a" * long},
        {"role": "assistant", "content": "b" * long},
        {"role": "user", "content": "c" * long},
        {"role": "assistant", "content": "d" * long},
        {"role": "user", "content": "The question"},
    ]
    response, _ = chat(http, live_server.url, {"messages": messages}, alice_key)
    assert response.status_code == 200

    sent = json.dumps(emu.requests()[-1]["body"])
    assert "SSSS" in sent and "The question" in sent
    assert "oldest" not in sent  # 5 x 29,000 is over the 120,000 budget: the oldest message goes
    assert len(sent) < 130_000
