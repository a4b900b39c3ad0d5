"""Answering over HTTP: a watch (``chat.watch``) encoded as a UI message stream (SSE), or one JSON body.

The response only *watches* the answer: a client that goes away stops reading, the body's
``finally`` closes the watch, and the turn finishes and saves the answer on its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from django.http import JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from chat import sse
from chat.api.errors import error_response
from chat.api.schemas import usage_json
from chat.events import TurnFinished
from chat.models import Message
from chat.schemas import ToolCallPart
from chat.turns import Turn
from chat.watch import Watch, watch
from providers.events import ReasoningDelta, TextDelta
from usage.limits import Quota

# Response headers wait for the answer's first content (so X-Model-Used names the model that
# actually answers, and a cache hit is known), but never longer than this.
HEADER_WAIT_S = 2.5
# Events that show a model is answering (after the AttemptStarted that named it).
ANSWERED = (TextDelta, ReasoningDelta, ToolCallPart)


def wants_json(request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/event-stream" not in accept


def blocking(request, turn: Turn) -> bool:
    """One JSON body instead of a stream: asked for, or streaming switched off by the flags."""
    return not turn.flags.get("enableStreaming", True) or wants_json(request)


def _start_metadata(turn: Turn) -> dict[str, Any]:
    return {"sessionId": str(turn.conversation_id), "traceId": turn.trace_id, "tier": turn.tier}


def rate_limit_headers(quota: Quota | None) -> dict[str, str]:
    """Where the person stands in the rate-limit window closest to its limit (none while limits are
    off or their counters unreachable)."""
    if quota is None:
        return {}
    return {
        "X-RateLimit-Limit": str(quota.limit),
        "X-RateLimit-Remaining": str(quota.remaining),
        "X-RateLimit-Reset": str(quota.reset_s),
    }


def _headers(turn: Turn, head: list[Any]) -> dict[str, str]:
    """What is known of the answer when the body starts.

    X-Model-Used only once a model has answered something (or the turn is over): while the first
    attempt is still failing over, the model being tried is not the one that will answer, and a
    header cannot be taken back (the stream's metadata part names the model in every case).
    """
    headers = {
        "X-Conversation-Id": str(turn.conversation_id),
        "X-Message-Id": str(turn.id),
        "X-Trace-Id": turn.trace_id,
        "X-Gateway-Cache": "hit" if turn.cache_hit else "miss",
        **rate_limit_headers(turn.prepared.quota),
    }
    finished = next((e for e in head if type(e) is TurnFinished), None)
    if finished is not None:
        if finished.metadata.get("modelUsed") and finished.status != Message.Status.ERROR:
            headers["X-Model-Used"] = finished.metadata["modelUsed"]
    elif turn.provider and any(isinstance(e, ANSWERED) for e in head):
        headers["X-Model-Used"] = f"{turn.provider}/{turn.model}"
    if turn.finish_reason is not None or turn.finished is not None:
        # The whole answer is already here: its size is known.
        headers["X-Token-Count"] = str(
            sum(a.usage.input_tokens + a.usage.output_tokens for a in turn.attempts)
        )
    elif turn.hit_usage is not None:  # a cache hit: the stored answer's size is known from the start
        headers["X-Token-Count"] = str(turn.hit_usage.input_tokens + turn.hit_usage.output_tokens)
    return headers


async def _body(answer: Watch, encoder: sse.UIMessageStreamEncoder, first: bytes) -> AsyncIterator[bytes]:
    try:
        yield first
        if encoder.finished:
            return
        encode = encoder.encode
        async for batch in answer:
            chunk = encode(batch)
            if chunk:
                yield chunk
            if encoder.finished:
                return
    finally:
        answer.close()


def _stream_response(body, headers: dict[str, str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(body, content_type=sse.CONTENT_TYPE)
    for name, value in {**sse.HEADERS, **headers}.items():
        response[name] = value
    return response


async def respond(request, turn: Turn) -> HttpResponseBase:
    """The answer to a turn just started: streamed, or (blocking) one JSON body."""
    answer = await watch(turn.id, turn)
    if blocking(request, turn):
        async with answer:
            finished = await answer.finished()
        return blocking_response(turn, finished)
    try:
        head = await answer.until_content(HEADER_WAIT_S)
    except BaseException:
        answer.close()
        raise
    encoder = sse.UIMessageStreamEncoder(str(turn.id))
    first = encoder.start(_start_metadata(turn)) + encoder.encode(head)
    return _stream_response(_body(answer, encoder, first), _headers(turn, head))


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
        "dataParts": finished.data_parts,
    }
    headers = {
        "X-Conversation-Id": str(turn.conversation_id),
        "X-Message-Id": finished.message_id,
        "X-Trace-Id": turn.trace_id,
        "X-Gateway-Cache": metadata.get("gatewayCache") or "miss",
        "X-Token-Count": str(metadata.get("tokenCount") or 0),
        **rate_limit_headers(turn.prepared.quota),
    }
    if metadata.get("modelUsed"):
        headers["X-Model-Used"] = metadata["modelUsed"]
    if finished.error and finished.error != "Stopped.":
        # Every provider failed: 503, with whatever text arrived (it is saved too).
        return error_response(
            "providers_unavailable",
            finished.error,
            503,
            headers=headers,
            retryable=finished.retryable,
            answer=answer,
        )
    response = JsonResponse(answer, json_dumps_params={"ensure_ascii": False})
    for name, value in headers.items():
        response[name] = value
    return response


async def attach_response(turn: Turn | None, message: Message) -> HttpResponseBase:
    """Everything so far, then live: from the running turn in this process, else the database."""
    answer = await watch(message.id, turn)
    encoder = sse.UIMessageStreamEncoder(str(message.id))
    headers = {"X-Conversation-Id": str(message.conversation_id), "X-Message-Id": str(message.id)}
    metadata = message.metadata or {}
    if metadata.get("modelUsed"):
        headers["X-Model-Used"] = metadata["modelUsed"]
    if turn is not None:
        headers["X-Trace-Id"] = turn.trace_id
        if turn.provider and turn.ttft_ms is not None:  # the model now streaming has answered
            headers["X-Model-Used"] = f"{turn.provider}/{turn.model}"
        start = encoder.start(_start_metadata(turn))
    else:
        start = encoder.start({"sessionId": str(message.conversation_id)})
    return _stream_response(_body(answer, encoder, start), headers)
