"""The database drops every connection while an answer streams: nothing is lost or written twice.

The blip is real: PostgreSQL terminates the backends of Chimera's connections mid-answer (what a
database restart or a failover does to them). SQLite has no such thing, so that test runs on
PostgreSQL only (as CI does).
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from chat import db, store
from chat.models import Message
from tests.chat.helpers import connect, frames_until, send, status_of, streamed_text
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db(transaction=True)


def drop_turn_connections() -> int:
    """Cut the turn pool's connections (the test's own stay: pytest-django needs them after)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            [db.APPLICATION_NAME],
        )
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (CI runs it)")
async def test_an_answer_streaming_through_a_dropped_connection_is_saved_whole_once(alice, emu):
    emu.timing(provider="*", ttft_ms=50, chunk_ms=60, chunks=60)  # a few seconds of streaming
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message="Tell me a long story")
    frames = await frames_until(communicator, "beforeend:#mc-")  # the answer is streaming

    assert await sync_to_async(drop_turn_connections)() >= 1  # the turn's own connection among them

    frames += await frames_until(communicator, 'data-testid="message-complete"', timeout=60)
    await communicator.disconnect()
    answer_id = status_of(frames)["message-id"]
    answer = await Message.objects.aget(pk=answer_id)
    assert answer.status == Message.Status.COMPLETE
    assert answer.content == streamed_text(frames, answer_id) and len(answer.content.split()) >= 60
    assert await UsageMetric.objects.filter(message_id=answer_id).acount() == 1


def test_writing_an_answer_twice_adds_no_usage_rows(alice, emu):
    from decimal import Decimal

    from chat.models import Conversation
    from providers.events import AttemptFinished, Usage
    from usage import recording

    conversation = Conversation.objects.create(user=alice, title="t")
    answer = Message.objects.create(conversation=conversation, role="assistant", status="streaming")
    attempts = [
        AttemptFinished("groq", "llama-3.3-70b-versatile", Usage(10, 5), 100, 50, error="503"),
        AttemptFinished("google", "gemini-2.5-flash", Usage(10, 20), 300, 80),
    ]
    final = store.FinalAnswer(
        answer_id=answer.id,
        conversation_id=conversation.id,
        user_id=alice.id,
        tier="balanced",
        trace_id="t",
        content="Done.",
        status="complete",
        metadata={},
        data_parts=[],
        tool_invocations=[],
        priced=recording.price(attempts),
    )
    store.finish(final)
    store.finish(final)  # a retry after a commit whose outcome was unknown

    rows = UsageMetric.objects.filter(message_id=answer.id).order_by("latency_ms")
    assert [(r.provider, r.output_tokens) for r in rows] == [("groq", 5), ("google", 20)]
    assert sum(r.cost_usd for r in rows) > Decimal(0)
