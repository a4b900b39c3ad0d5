"""Dead answers settled with nobody watching: the orphan sweep every web process runs.

A server process killed (SIGKILL) mid-answer leaves its answer `streaming`, its text and its
attempts as last checkpointed. Another server process, which nobody talks to, finds it once its
heartbeat is three beats old, and settles it: `incomplete`, the text kept, its usage row written
(marked estimated where it is), and a retryable error part, so the page offers Retry / Continue
and the resume stream ends with an error, never a plain finish.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from decimal import Decimal

import httpx2
import pytest
from django.test import Client
from django.utils import timezone

from chat import store, sweep
from chat.models import Conversation, Message
from flags import runtime as flags
from tests.api.helpers import chat, sse_parts, types, wait_for
from tests.conftest import start_live_server
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db(transaction=True)

# A quick heartbeat for the servers under test: dead after 3 s, swept every half second.
FAST_BEAT = {
    "CHIMERA_HEARTBEAT_S": "1",
    "CHIMERA_SWEEP_ORPHANS": "True",
    "CHIMERA_CHECKPOINT_MS": "200",
}


def test_an_answer_whose_server_was_killed_is_settled_by_another_server_with_its_usage(
    emu, alice, transactional_db
):
    from accounts.apikeys import create_api_key

    key = create_api_key(alice, "tests")[1]
    flags.set_flags({"rateLimit": {"enabled": False}, "enableCaching": False})
    emu.timing(provider="*", ttft_ms=5, chunk_ms=80, chunks=400)  # a long answer
    doomed = start_live_server(emu.url, FAST_BEAT)
    survivor = start_live_server(emu.url, FAST_BEAT)
    try:
        with httpx2.Client(timeout=30) as http:
            # Start an answer, then leave: nobody reads it from here on.
            with http.stream(
                "POST",
                doomed.url + "/api/chat/v2",
                json={"messages": [{"role": "user", "content": "Tell me about glaciers"}]},
                headers={"Authorization": f"Bearer {key}"},
            ) as response:
                assert response.status_code == 200
                answer_id, conversation_id = (
                    response.headers["x-message-id"],
                    response.headers["x-conversation-id"],
                )

        def checkpointed():
            row = Message.objects.filter(pk=answer_id).values("content", "pending_usage", "status").first()
            return row if row and row["content"] and row["pending_usage"] else None

        before = wait_for(checkpointed, timeout=30, interval=0.2, what="a checkpoint with text and usage")
        assert before["status"] == "streaming"
        os.kill(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(timeout=10)
        saved = Message.objects.get(pk=answer_id).content

        settled = wait_for(  # the bound: within 40 s of the kill
            lambda: Message.objects.filter(pk=answer_id).exclude(status="streaming").first(),
            timeout=40,
            interval=0.2,
            what="the sweep settling the answer",
        )
        assert (
            settled.status == "incomplete"
            and settled.content == saved
            and saved.startswith(before["content"])
        )
        assert settled.pending_usage is None
        errors = [p for p in settled.data_parts if p["type"] == "error"]
        assert errors and errors[0]["retryable"] is True and errors[0]["error"] == store.ORPHANED
        rows = list(UsageMetric.objects.filter(message_id=answer_id))
        assert len(rows) == 1, rows
        (row,) = rows
        assert row.input_tokens > 0 and row.output_tokens > 0 and row.output_estimated
        assert row.error == "interrupted" and row.cost_usd is not None and row.cost_usd > 0
        assert settled.metadata["inputTokens"] == row.input_tokens

        # Resuming it on the surviving server ends with a retryable error, never a plain finish.
        with httpx2.Client(timeout=30) as http:
            with http.stream(
                "GET",
                f"{survivor.url}/api/conversations/{conversation_id}/messages/{answer_id}/stream",
                headers={"Authorization": f"Bearer {key}"},
            ) as response:
                parts = list(sse_parts(response))
        assert "error" in types(parts), types(parts)
        data_error = next(p for p in parts if isinstance(p, dict) and p["type"] == "data-error")
        assert data_error["data"]["retryable"] is True
        assert types(parts).index("error") < types(parts).index("finish")
    finally:
        for server in (doomed, survivor):
            if server.process.poll() is None:
                server.process.terminate()
                server.process.wait(timeout=10)
        flags.set_flags({})


def test_the_sweep_settles_each_orphan_once_with_its_checkpointed_attempts(alice, settings):
    settings.CHIMERA_HEARTBEAT_S = 1
    conversation = Conversation.objects.create(user=alice, title="Crashed")
    question = Message.objects.create(conversation=conversation, role="user", content="Q")
    attempts = [
        {  # a failed attempt, already over
            "provider": "groq",
            "model": "llama-3.3-70b-versatile",
            "usage": {"input_tokens": 0, "output_tokens": 0},
            "latency_ms": 12,
            "ttft_ms": None,
            "error": "503 overloaded",
            "status": 503,
            "cache_hit": False,
        },
        {  # the one in flight when the process died
            "provider": "anthropic",
            "model": "claude-haiku-4-5",
            "usage": {"input_tokens": 1200, "output_tokens": 40, "output_estimated": True},
            "latency_ms": 900,
            "ttft_ms": 300,
            "error": "interrupted",
            "status": None,
            "cache_hit": False,
        },
    ]
    orphan = Message.objects.create(
        conversation=conversation,
        parent_message=question,
        role="assistant",
        content="Half an answer",
        status=Message.Status.STREAMING,
        metadata={"tier": "balanced"},
        pending_usage={"trace_id": "3f0c0d8e-trace", "attempts": attempts},
    )
    empty = Message.objects.create(
        conversation=conversation,
        parent_message=question,
        role="assistant",
        content="",
        status=Message.Status.STREAMING,
    )
    alive = Message.objects.create(
        conversation=conversation, parent_message=question, role="assistant", status=Message.Status.STREAMING
    )
    Message.objects.filter(pk__in=[orphan.pk, empty.pk]).update(
        updated_at=timezone.now() - timedelta(seconds=5)
    )

    assert sweep.sweep_once() == 2
    assert sweep.sweep_once() == 0  # each once

    orphan.refresh_from_db()
    assert (
        orphan.status == "incomplete" and orphan.content == "Half an answer" and orphan.pending_usage is None
    )
    rows = {r.provider: r for r in UsageMetric.objects.filter(message_id=orphan.pk)}
    assert set(rows) == {"groq", "anthropic"}
    assert rows["anthropic"].output_estimated and not rows["anthropic"].input_estimated
    assert rows["anthropic"].tier == "balanced" and rows["anthropic"].user_id == alice.pk
    assert rows["anthropic"].trace_id == "3f0c0d8e-trace"
    # Catalog price: 1,200 in at $1.00/M + 40 out at $5.00/M.
    assert str(rows["anthropic"].cost_usd) == "0.001400"
    assert Decimal(orphan.metadata["cost"]) == Decimal("0.0014") and orphan.metadata["tokenCount"] == 1240
    empty.refresh_from_db()
    assert empty.status == "error" and empty.data_parts[-1]["retryable"] is True
    alive.refresh_from_db()
    assert alive.status == "streaming"  # touched within three beats: its process is alive


def _cut_short(alice, content="Glaciers carve valleys as they"):
    conversation = Conversation.objects.create(user=alice, title="Cut short")
    question = Message.objects.create(
        conversation=conversation, role="user", content="How do glaciers shape land?"
    )
    answer = Message.objects.create(
        conversation=conversation,
        parent_message=question,
        role="assistant",
        content=content,
        status=Message.Status.INCOMPLETE,
        data_parts=[{"type": "error", "error": store.ORPHANED, "retryable": True}],
    )
    Conversation.objects.filter(pk=conversation.pk).update(active_leaf=answer)
    return conversation, answer


async def test_continue_on_the_page_goes_on_from_where_the_answer_stopped_in_the_same_message(alice, emu):
    from asgiref.sync import sync_to_async

    from tests.chat.helpers import connect, frames_until, send

    conversation, answer = await sync_to_async(_cut_short)(alice)

    def page_html() -> str:
        page = Client()
        page.force_login(alice)
        return page.get(f"/c/{conversation.id}/").content.decode()

    assert 'data-testid="continue-button"' in await sync_to_async(page_html)()
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="continue", message_id=str(answer.id), tier="balanced")
    frames = await frames_until(communicator, 'data-testid="message-complete"', timeout=60)
    await communicator.disconnect()

    await answer.arefresh_from_db()
    assert answer.status == "complete" and answer.content.startswith("Glaciers carve valleys as they ")
    assert len(answer.content) > len("Glaciers carve valleys as they ") + 20
    assert not any(p["type"] == "error" for p in answer.data_parts or [])
    assert await Message.objects.filter(parent_message_id=answer.parent_message_id).acount() == 1  # no branch
    sent = [r for r in emu.requests() if r["body"] is not None][-1]["body"]["messages"]
    assert {"role": "assistant", "content": "Glaciers carve valleys as they"} in sent  # continued, not redone
    assert await UsageMetric.objects.filter(message_id=answer.id).acount() == 1
    assert any(f'id="mc-{answer.id}"' in f for f in frames)


def test_continue_over_the_api_streams_the_continuation_and_refuses_a_finished_answer(
    live_server, emu, alice, alice_key
):
    conversation, answer = _cut_short(alice, "Tides rise twice a day because")
    path = f"/api/conversations/{conversation.id}/messages/{answer.id}/continue"
    with httpx2.Client(timeout=60) as http:
        response, parts = chat(http, live_server.url, {}, alice_key, path=path)
        assert response.status_code == 200
        again, _ = chat(http, live_server.url, {}, alice_key, path=path)
    answer.refresh_from_db()
    assert answer.status == "complete" and answer.content.startswith("Tides rise twice a day because ")
    assert "finish" in types(parts) and "error" not in types(parts)
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_continuable", again.text
