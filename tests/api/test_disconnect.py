"""A client that goes away mid-answer: the stream lets go of the turn, the turn runs on and saves.

Driven through Django's real ASGI application in this process (an ASGI client that sends
``http.disconnect``), so the running turn itself can be inspected.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from django.core.asgi import get_asgi_application
from django.db import connections

from chat.models import Message
from chat.turns import running_turn

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_executor_connections():
    """The ORM's async calls ran in executor threads (the global one, and the one of the request's
    thread-sensitive context, which the turn inherited) whose connections outlive the test: close
    them so the test database can be flushed and dropped."""
    yield
    await sync_to_async(connections.close_all)()
    for executor in list(SyncToAsync.context_to_thread_executor.values()):
        await asyncio.wrap_future(executor.submit(connections.close_all))


async def test_a_disconnect_unsubscribes_the_stream_and_the_turn_finishes_and_saves(emu, alice, alice_key):
    emu.timing(provider="*", ttft_ms=5, chunk_ms=20, chunks=60)
    app = get_asgi_application()
    body = json.dumps({"messages": [{"role": "user", "content": "Explain quantum computing"}]}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/chat/v2",
        "raw_path": b"/api/chat/v2",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {alice_key}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    gone = asyncio.Event()
    received: list[dict] = []
    requests = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if requests:
            return requests.pop(0)
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        received.append(message)
        if message["type"] == "http.response.body" and b'"text-delta"' in message.get("body", b""):
            gone.set()

    await asyncio.wait_for(app(scope, receive, send), 10)

    headers = dict(received[0]["headers"])
    message_id = uuid.UUID(headers[b"X-Message-Id"].decode())
    turn = running_turn(message_id)
    assert turn is not None and not turn.task.done()  # still answering, with nobody listening
    assert turn.subscribers == set()
    await asyncio.wait_for(asyncio.shield(turn.task), 15)
    answer = await Message.objects.aget(pk=message_id)
    assert answer.status == "complete" and len(answer.content.split()) >= 50
    assert not any(b"[DONE]" in m.get("body", b"") for m in received)
