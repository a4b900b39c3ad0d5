"""Answering with a turn: as a UI message stream (SSE) or as one JSON body, and attaching later.

The HTTP response only *watches* the turn (``Turn.subscribe``): a client that goes away
stops reading, the generator's ``finally`` unsubscribes, and the turn finishes and saves
the answer on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils import timezone

from chat import db, sse
from chat.api.errors import error_response
from chat.api.schemas import usage_json
from chat.models import Message
from chat.turns import ORPHAN_AFTER, Turn, TurnFinished, mark_orphans

# Response headers wait for the answer's first content (so X-Model-Used names the model that
# actually answers, and a cache hit is known), but never longer than this.
HEADER_WAIT_S = 2.5
POLL_S = 0.5  # following an answer another process runs: its database checkpoints
CONTENT_KINDS = frozenset({"text", "reasoning", "tool-call", "finish", "error", "turn-finished"})


def wants_json(request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/event-stream" not in accept


def _start_metadata(turn: Turn) -> dict[str, Any]:
    return {"sessionId": str(turn.conversation_id), "traceId": turn.trace_id, "tier": turn.options.tier}


def _headers(turn: Turn, events: list[Any]) -> dict[str, str]:
    headers = {
        "X-Conversation-Id": str(turn.conversation_id),
        "X-Message-Id": str(turn.id),
        "X-Trace-Id": turn.trace_id,
        "X-Gateway-Cache": "miss",
    }
    if turn.provider:
        headers["X-Model-Used"] = f"{turn.provider}/{turn.model}"
    finished = False
    for event in events:
        kind = event.kind
        if kind == "attempt-finished" and event.cache_hit:
            headers["X-Gateway-Cache"] = "hit"
        elif kind in ("finish", "turn-finished"):
            finished = True
    if finished:  # the whole answer is already here (a cache hit): its size is known
        tokens = sum(a.usage.input_tokens + a.usage.output_tokens for a in turn.attempts)
        headers["X-Token-Count"] = str(tokens)
    return headers


async def _gate(events: list[Any], queue: asyncio.Queue) -> list[Any]:
    """Wait for the first content (or the end), at most HEADER_WAIT_S; then take what is queued."""
    events = list(events)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HEADER_WAIT_S
    while not any(e.kind in CONTENT_KINDS for e in events):
        timeout = deadline - loop.time()
        if timeout <= 0:
            break
        try:
            events.append(await asyncio.wait_for(queue.get(), timeout))
        except TimeoutError:
            break
    while not queue.empty():
        events.append(queue.get_nowait())
    return events


async def _until_finished(events: list[Any], queue: asyncio.Queue) -> TurnFinished:
    for event in events:
        if event.kind == "turn-finished":
            return event
    while True:
        event = await queue.get()
        if event.kind == "turn-finished":
            return event


async def _pump(
    turn: Turn, queue: asyncio.Queue, encoder: sse.UIMessageStreamEncoder, first: bytes
) -> AsyncIterator[bytes]:
    try:
        yield first
        if encoder.finished:
            return
        get, empty, get_nowait, encode = queue.get, queue.empty, queue.get_nowait, encoder.encode
        while True:
            batch = [await get()]
            while not empty():
                batch.append(get_nowait())
            chunk = encode(batch)
            if chunk:
                yield chunk
            if encoder.finished:
                return
    finally:
        turn.unsubscribe(queue)


def _stream_response(body, headers: dict[str, str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(body, content_type=sse.CONTENT_TYPE)
    for name, value in {**sse.HEADERS, **headers}.items():
        response[name] = value
    return response


async def respond(request, turn: Turn, blocking: bool) -> HttpResponse:
    """The answer to a turn just started: streamed, or (blocking) one JSON body."""
    events, queue = turn.subscribe()
    if getattr(request, "chimera_db_in_request_thread", False):
        # A session request read the database on its own thread, which keeps the connection until
        # the response ends; the turn writes through chat.db, so give it back before streaming.
        await sync_to_async(connections.close_all)()
    if blocking:
        try:
            finished = await _until_finished(events, queue)
        finally:
            turn.unsubscribe(queue)
        return blocking_response(turn, finished)
    try:
        head = await _gate(events, queue)
    except BaseException:
        turn.unsubscribe(queue)
        raise
    encoder = sse.UIMessageStreamEncoder(str(turn.id))
    first = encoder.start(_start_metadata(turn)) + encoder.encode(head)
    return _stream_response(_pump(turn, queue, encoder, first), _headers(turn, head))


def blocking_response(turn: Turn, finished: TurnFinished) -> JsonResponse:
    metadata = finished.metadata
    answer = {
        "id": finished.message_id,
        "conversationId": str(turn.conversation_id),
        "role": "assistant",
        "status": finished.status,
        "text": finished.content,
        "finishReason": metadata.get("finishReason"),
        "metadata": metadata,
        "usage": usage_json(metadata),
        "dataParts": turn.data_parts,
    }
    headers = {
        "X-Conversation-Id": str(turn.conversation_id),
        "X-Message-Id": finished.message_id,
        "X-Trace-Id": turn.trace_id,
        "X-Gateway-Cache": metadata.get("gatewayCache") or "miss",
        "X-Token-Count": str(metadata.get("tokenCount") or 0),
    }
    if metadata.get("modelUsed"):
        headers["X-Model-Used"] = metadata["modelUsed"]
    if finished.error and finished.error != "Stopped.":
        # Every provider failed: 503, with whatever text arrived (it is saved too).
        retryable = turn.error.retryable if turn.error is not None else True
        response = error_response(
            "providers_unavailable", finished.error, 503, headers=headers, retryable=retryable, answer=answer
        )
        return response
    response = JsonResponse(answer, json_dumps_params={"ensure_ascii": False})
    for name, value in headers.items():
        response[name] = value
    return response


# ---- attaching to an answer (in flight or finished) -----------------------------------------
def attach_response(turn: Turn | None, message: Message) -> HttpResponse:
    """Everything so far, then live: from the running turn in this process, else the database."""
    encoder = sse.UIMessageStreamEncoder(str(message.id))
    headers = {"X-Conversation-Id": str(message.conversation_id), "X-Message-Id": str(message.id)}
    metadata = message.metadata or {}
    if metadata.get("modelUsed"):
        headers["X-Model-Used"] = metadata["modelUsed"]
    if turn is not None:
        events, queue = turn.subscribe()
        headers["X-Trace-Id"] = turn.trace_id
        if turn.provider:
            headers["X-Model-Used"] = f"{turn.provider}/{turn.model}"
        first = encoder.start(_start_metadata(turn)) + encoder.encode(events)
        return _stream_response(_pump(turn, queue, encoder, first), headers)
    start = encoder.start({"sessionId": str(message.conversation_id)})
    if message.status != Message.Status.STREAMING:
        return _stream_response(_once(start + encoder.replay_message(message)), headers)
    return _stream_response(_follow(message.id, encoder, start), headers)


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _follow(message_id, encoder: sse.UIMessageStreamEncoder, first: bytes) -> AsyncIterator[bytes]:
    """An answer another process is writing: relay its checkpoints until it is final."""
    yield first
    sent = ""
    while True:
        row = await Message.objects.filter(pk=message_id).values("content", "status", "updated_at").afirst()
        if (
            row is not None
            and row["status"] == Message.Status.STREAMING
            and (row["updated_at"] < timezone.now() - ORPHAN_AFTER)
        ):
            await db.run(mark_orphans, message_id=message_id)  # its process died: settle it
            continue
        if row is None:
            out: list[bytes] = []
            encoder.finish({}, Message.Status.ERROR, out, "The answer was deleted.")
            yield b"".join(out)
            return
        out = []
        content = row["content"]
        if not content.startswith(sent):  # the answer restarted on another provider
            encoder.switch({"mode": "restart", "reason": "the answer restarted"}, out)
            sent = ""
        if row["status"] != Message.Status.STREAMING:
            message = await Message.objects.aget(pk=message_id)
            yield b"".join(out) + encoder.replay_message(message, already_sent=sent)
            return
        if len(content) > len(sent):
            encoder.text(content[len(sent) :], out)
            sent = content
        if out:
            yield b"".join(out)
        await asyncio.sleep(POLL_S)
