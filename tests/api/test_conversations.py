"""The conversation API: list, get, rename, archive, delete, fork, branches, edit, regenerate, stop, attach."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from chat.models import Conversation, Message
from tests.api.helpers import DONE, chat, metadata_of, sse_parts, text_of, types, wait_for
from tests.chat.test_manage import conversation_with_branches

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api(live_server, http, alice_key):
    """``api(method, path, json=None)`` as alice, with her key."""

    def call(method: str, path: str, json=None, **kwargs):
        return http.request(
            method,
            live_server.url + "/api" + path,
            json=json,
            headers={"Authorization": f"Bearer {alice_key}", **kwargs.pop("headers", {})},
            **kwargs,
        )

    return call


def start_conversation(live_server, http, key, text="Explain quantum computing"):
    response, parts = chat(http, live_server.url, {"messages": [{"role": "user", "content": text}]}, key)
    assert response.status_code == 200
    return response.headers["x-conversation-id"], parts


# ---- listing ---------------------------------------------------------------------------
def test_the_list_is_paginated_newest_first(api, alice, bob):
    now = timezone.now()
    for i, title in enumerate(["oldest", "middle", "newest"]):
        c = Conversation.objects.create(user=alice, title=title)
        Conversation.objects.filter(pk=c.pk).update(updated_at=now + timedelta(minutes=i))
    Conversation.objects.create(user=bob, title="bob's")

    first = api("GET", "/conversations?limit=2").json()
    second = api("GET", f"/conversations?limit=2&offset={first['nextOffset']}").json()

    assert [c["title"] for c in first["items"]] == ["newest", "middle"]
    assert (first["count"], first["nextOffset"]) == (3, 2)
    assert [c["title"] for c in second["items"]] == ["oldest"] and second["nextOffset"] is None


def test_the_list_filters_archived_and_searches_titles_and_messages(api, alice):
    Conversation.objects.create(user=alice, title="Gardening tips", is_archived=True)
    tides = Conversation.objects.create(user=alice, title="Untitled")
    Message.objects.create(conversation=tides, role="user", content="Why do TIDES happen?")
    Conversation.objects.create(user=alice, title="Tide tables")

    assert [c["title"] for c in api("GET", "/conversations").json()["items"]] == ["Tide tables", "Untitled"]
    assert [c["title"] for c in api("GET", "/conversations?archived=true").json()["items"]] == [
        "Gardening tips"
    ]
    found = api("GET", "/conversations?q=tide").json()
    assert {c["title"] for c in found["items"]} == {"Tide tables", "Untitled"} and found["count"] == 2
    assert api("GET", "/conversations?q=tides").json()["items"][0]["id"] == str(tides.id)
    assert api("GET", "/conversations?limit=0").status_code == 422


# ---- one conversation ---------------------------------------------------------------------
def test_get_returns_the_tree_and_the_active_branch_with_siblings(api, live_server, emu, http, alice_key):
    conversation_id, parts = start_conversation(live_server, http, alice_key)
    first_answer = parts[0]["messageId"]
    response, parts2 = chat(
        http,
        live_server.url,
        {},
        alice_key,
        path=f"/api/conversations/{conversation_id}/messages/{first_answer}/regenerate",
    )
    second_answer = parts2[0]["messageId"]

    detail = api("GET", f"/conversations/{conversation_id}").json()

    assert detail["id"] == conversation_id and detail["activeLeafId"] == second_answer
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant", "assistant"]
    user_id = detail["messages"][0]["id"]
    assert {m["parentId"] for m in detail["messages"][1:]} == {user_id}
    branch = detail["activeBranch"]
    assert [m["id"] for m in branch] == [user_id, second_answer]
    assert (branch[1]["siblingIndex"], branch[1]["siblingCount"]) == (2, 2)
    assert branch[1]["prevSiblingId"] == first_answer and branch[1]["nextSiblingId"] is None
    assert branch[1]["content"] == text_of(parts2) and branch[1]["metadata"]["modelUsed"]


def test_rename_archive_and_unarchive(api, alice):
    conversation = Conversation.objects.create(user=alice, title="Old")

    renamed = api("PATCH", f"/conversations/{conversation.id}", {"title": "New name"}).json()
    archived = api("PATCH", f"/conversations/{conversation.id}", {"isArchived": True}).json()
    assert (renamed["title"], archived["isArchived"]) == ("New name", True)
    assert api("GET", "/conversations").json()["count"] == 0
    assert (
        api("PATCH", f"/conversations/{conversation.id}", {"isArchived": False}).json()["isArchived"] is False
    )
    conversation.refresh_from_db()
    assert (conversation.title, conversation.is_archived) == ("New name", False)
    assert api("PATCH", f"/conversations/{conversation.id}", {"title": ""}).status_code == 422


def test_delete_removes_the_conversation_and_its_messages(api, alice):
    conversation = Conversation.objects.create(user=alice, title="Doomed")
    Message.objects.create(conversation=conversation, role="user", content="bye")

    assert api("DELETE", f"/conversations/{conversation.id}").status_code == 204
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
    assert api("GET", f"/conversations/{conversation.id}").status_code == 404


def test_fork_copies_the_path_into_a_new_conversation_that_points_back(
    api, live_server, emu, http, alice_key
):
    conversation_id, parts = start_conversation(live_server, http, alice_key)
    chat(
        http,
        live_server.url,
        {"conversationId": conversation_id, "messages": [{"role": "user", "content": "More"}]},
        alice_key,
    )

    response = api("POST", f"/conversations/{conversation_id}/fork", {"messageId": parts[0]["messageId"]})

    assert response.status_code == 201
    fork = response.json()
    assert fork["parentId"] == conversation_id and fork["title"].endswith("(fork)")
    copied = Message.objects.filter(conversation_id=fork["id"]).order_by("created_at")
    assert [m.role for m in copied] == ["user", "assistant"] and copied[1].content == text_of(parts)
    assert (
        api(
            "POST",
            f"/conversations/{conversation_id}/fork",
            {"messageId": "6f1e1f57-5b8e-4a4e-9d4f-000000000000"},
        ).status_code
        == 404
    )


def test_selecting_a_branch_makes_it_active(api, live_server, emu, http, alice_key):
    conversation_id, parts = start_conversation(live_server, http, alice_key)
    first_answer = parts[0]["messageId"]
    chat(
        http,
        live_server.url,
        {},
        alice_key,
        path=f"/api/conversations/{conversation_id}/messages/{first_answer}/regenerate",
    )

    detail = api("POST", f"/conversations/{conversation_id}/branch", {"messageId": first_answer}).json()

    assert detail["activeLeafId"] == first_answer
    assert detail["activeBranch"][-1]["id"] == first_answer


# ---- turns on existing messages -------------------------------------------------------------
def test_editing_a_user_message_streams_the_answer_on_a_new_branch(api, live_server, emu, http, alice_key):
    conversation_id, parts = start_conversation(live_server, http, alice_key)
    original = Message.objects.get(conversation_id=conversation_id, role="user")

    response, parts2 = chat(
        http,
        live_server.url,
        {"content": "Explain classical computing"},
        alice_key,
        path=f"/api/conversations/{conversation_id}/messages/{original.id}/edit",
    )

    assert response.status_code == 200 and types(parts2)[-1] == DONE and text_of(parts2)
    edited = Message.objects.get(conversation_id=conversation_id, role="user", is_edited=True)
    assert (
        edited.content == "Explain classical computing"
        and edited.parent_message_id == original.parent_message_id
    )
    answer = Message.objects.get(pk=parts2[0]["messageId"])
    assert answer.parent_message_id == edited.id and answer.content == text_of(parts2)
    branch = api("GET", f"/conversations/{conversation_id}").json()["activeBranch"]
    assert [m["id"] for m in branch] == [str(edited.id), str(answer.id)]
    assert branch[0]["siblingCount"] == 2
    too_long = api(
        "POST", f"/conversations/{conversation_id}/messages/{original.id}/edit", {"content": "x" * 40_000}
    )
    assert too_long.status_code == 413 and too_long.json()["error"]["field"] == "content"


def test_regenerating_an_answer_streams_a_new_sibling(api, live_server, emu, http, alice_key):
    conversation_id, parts = start_conversation(live_server, http, alice_key)
    first = Message.objects.get(pk=parts[0]["messageId"])

    response, parts2 = chat(
        http,
        live_server.url,
        {"config": {"model": "fast"}},
        alice_key,
        path=f"/api/conversations/{conversation_id}/messages/{first.id}/regenerate",
    )

    assert response.status_code == 200 and text_of(parts2)
    second = Message.objects.get(pk=parts2[0]["messageId"])
    assert second.parent_message_id == first.parent_message_id and second.id != first.id
    assert second.metadata["tier"] == "fast" and second.status == "complete"
    user_message = Message.objects.get(conversation_id=conversation_id, role="user")
    assert (
        api("POST", f"/conversations/{conversation_id}/messages/{user_message.id}/regenerate").status_code
        == 404
    )


def test_stopping_an_answer_in_flight_keeps_the_partial_text(api, live_server, emu, http, alice_key):
    emu.timing(provider="*", ttft_ms=5, chunk_ms=40, chunks=200)
    with http.stream(
        "POST",
        live_server.url + "/api/chat/v2",
        json={"messages": [{"role": "user", "content": "Tell me a long story"}]},
        headers={"Authorization": f"Bearer {alice_key}"},
    ) as response:
        conversation_id, message_id = response.headers["x-conversation-id"], response.headers["x-message-id"]
        parts = []
        stream = sse_parts(response)
        for part in stream:
            parts.append(part)
            if sum(1 for p in parts if isinstance(p, dict) and p["type"] == "text-delta") >= 3:
                break

        stopped = api("POST", f"/conversations/{conversation_id}/messages/{message_id}/stop")
        parts.extend(stream)

    assert stopped.status_code == 200 and stopped.json()["stopped"] is True
    saved = stopped.json()["message"]
    assert saved["status"] == "incomplete" and saved["content"]
    assert Message.objects.get(pk=message_id).content == saved["content"] == text_of(parts)
    assert metadata_of(parts)["status"] == "incomplete"
    assert types(parts)[-3:] == ["finish-step", "finish", DONE] and "error" not in types(parts)
    again = api("POST", f"/conversations/{conversation_id}/messages/{message_id}/stop").json()
    assert again["stopped"] is False and again["message"]["status"] == "incomplete"


def test_attaching_to_an_answer_in_flight_gives_everything_so_far_then_live(
    api, live_server, emu, http, alice_key
):
    emu.timing(provider="*", ttft_ms=5, chunk_ms=20, chunks=80)
    with http.stream(
        "POST",
        live_server.url + "/api/chat/v2",
        json={"messages": [{"role": "user", "content": "Describe the sea"}]},
        headers={"Authorization": f"Bearer {alice_key}"},
    ) as first:
        conversation_id, message_id = first.headers["x-conversation-id"], first.headers["x-message-id"]
        for line in first.iter_lines():
            if '"text-delta"' in line:
                break
        # The first client went away; a second one attaches.
        response, parts = chat(
            http,
            live_server.url,
            {},
            alice_key,
            method="GET",
            path=f"/api/conversations/{conversation_id}/messages/{message_id}/stream",
        )

    assert response.status_code == 200
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    kinds = types(parts)
    assert kinds[:4] == ["start", "start-step", "text-start", "text-delta"]
    assert kinds.count("text-delta") > 1  # the replay, then live deltas
    assert kinds[-1] == DONE and parts[0]["messageId"] == message_id
    answer = Message.objects.get(pk=message_id)
    assert answer.status == "complete" and text_of(parts) == answer.content


def test_attaching_after_the_answer_finished_replays_it_whole(api, live_server, emu, http, alice_key):
    conversation_id, parts = start_conversation(live_server, http, alice_key)
    message_id = parts[0]["messageId"]

    response, replay = chat(
        http,
        live_server.url,
        {},
        alice_key,
        method="GET",
        path=f"/api/conversations/{conversation_id}/messages/{message_id}/stream",
    )

    assert text_of(replay) == text_of(parts)
    assert metadata_of(replay)["traceId"] == metadata_of(parts)["traceId"]
    assert types(replay)[-3:] == ["finish-step", "finish", DONE]


def test_attaching_to_an_answer_another_process_writes_follows_its_checkpoints(api, live_server, alice):
    conversation = Conversation.objects.create(user=alice, title="elsewhere")
    question = Message.objects.create(conversation=conversation, role="user", content="Hi")
    answer = Message.objects.create(
        conversation=conversation,
        role="assistant",
        parent_message=question,
        content="Hello",
        status="streaming",
        metadata={},
    )

    def the_other_process_writes():
        Message.objects.filter(pk=answer.pk).update(content="Hello there")
        threading.Event().wait(0.7)
        Message.objects.filter(pk=answer.pk).update(
            content="Hello there, friend.",
            status="complete",
            metadata={"finishReason": "stop", "modelUsed": "groq/x"},
        )
        connection.close()

    writer = threading.Timer(0.3, the_other_process_writes)
    writer.start()
    response = api("GET", f"/conversations/{conversation.id}/messages/{answer.id}/stream")
    writer.join()

    parts = list(sse_parts(response))
    assert text_of(parts) == "Hello there, friend."
    assert types(parts)[-3:] == ["finish-step", "finish", DONE]
    assert metadata_of(parts)["modelUsed"] == "groq/x"


def test_the_ai_sdk_resume_url_answers_204_when_nothing_is_in_flight(api, live_server, emu, http, alice_key):
    conversation_id, _ = start_conversation(live_server, http, alice_key)

    assert api("GET", f"/chat/v2/{conversation_id}/stream").status_code == 204
    assert api("GET", "/chat/v2/some-chat-never-seen/stream").status_code == 404


def test_the_ai_sdk_resume_url_streams_the_answer_in_flight(api, live_server, emu, http, alice_key):
    emu.timing(provider="*", ttft_ms=5, chunk_ms=15, chunks=60)
    body = {
        "id": "resumable-chat",
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]}],
    }
    with http.stream(
        "POST", live_server.url + "/api/chat/v2", json=body, headers={"Authorization": f"Bearer {alice_key}"}
    ) as first:
        message_id = first.headers["x-message-id"]
        next(first.iter_lines())
        response, parts = chat(
            http, live_server.url, {}, alice_key, method="GET", path="/api/chat/v2/resumable-chat/stream"
        )

    assert response.status_code == 200 and parts[0]["messageId"] == message_id
    wait_for(lambda: Message.objects.get(pk=message_id).status == "complete")
    assert text_of(parts) == Message.objects.get(pk=message_id).content


def test_export_as_json_through_the_api_carries_metadata_cost_and_branch_position(
    live_server, http, alice, alice_key
):
    conversation = conversation_with_branches(alice)
    response = http.get(
        f"{live_server.url}/api/conversations/{conversation.id}/export?format=json",
        headers={"Authorization": f"Bearer {alice_key}"},
    )
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = json.loads(response.text)
    assert body["title"] == "Trip to Lisbon" and body["branch"] == "active"
    assert [m["content"] for m in body["messages"]] == ["Plan a trip", "New plan: **three days**"]
    answer = body["messages"][1]
    assert answer["model"] == "groq/llama-3.3-70b-versatile" and answer["costUsd"] == "0.001234"
    assert answer["branch"] == {"index": 2, "count": 2} and answer["tokens"]["output"] == 30
    assert Decimal(body["totalCostUsd"]) == Decimal("0.001234")
    bad = http.get(
        f"{live_server.url}/api/conversations/{conversation.id}/export?format=pdf",
        headers={"Authorization": f"Bearer {alice_key}"},
    )
    assert bad.status_code == 422
