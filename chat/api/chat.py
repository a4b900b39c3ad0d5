"""POST /api/chat/v2: one turn, answered in the AI SDK UI message stream protocol (or blocking JSON).

Two request forms are accepted. The spec's: ``messages`` of ``{role, content, dataParts?}``
plus ``conversationId``, ``config``, ``context``. The AI SDK's (``DefaultChatTransport``, so
a stock ``useChat`` works): ``messages`` of UIMessages ``{id, role, parts}`` plus the chat
``id``, ``trigger`` and ``messageId``.

The server's copy of a conversation is the truth: for a conversation it knows, only the last
(user) message is new; earlier messages a client sends are stored only when they start a
conversation (a client-held history). A chat ``id`` that is a UUID is the conversation id;
any other string maps to a stable per-user UUID, so a ``useChat`` chat keeps one conversation.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from django.conf import settings
from django.db import IntegrityError
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from ninja import Router
from pydantic import ValidationError

from chat import store
from chat.access import aconversation_for, as_uuid
from chat.api import streams
from chat.api.auth import caller, deferred_api_key, session
from chat.api.schemas import (
    AnswerOut,
    ChatConfig,
    ChatContext,
    ChatRequest,
    ErrorOut,
    MessageIn,
)
from chat.errors import NotFound, TurnError
from chat.models import Message
from chat.request import TurnOptions, TurnRequest, validate_content
from chat.schemas import dump_part, validate_data_parts
from chat.turns import running_turn, start_turn

router = Router(tags=["chat"])

# uuid5 namespace for AI SDK chat ids that are not UUIDs.
CHAT_ID_NAMESPACE = uuid.UUID("5b0c1f8e-6d2a-4c55-9d0e-8f3a2b7c9e41")

STREAM_DOC = {
    "responses": {
        200: {
            "description": (
                "An AI SDK UI message stream (`x-vercel-ai-ui-message-stream: v1`): `data: {part}` events — "
                "start, start-step, reasoning-*, text-start/text-delta/text-end, data-provider-switch, "
                "tool-input-start/-delta/-available, tool-output-available/-error, data-tool-call, "
                "source-document, data-chart/data-code/…, data-error, message-metadata (ChimeraMetadata), error, finish-step, finish — "
                "then `data: [DONE]`. With `Accept: application/json` (or the enableStreaming flag off): one "
                "JSON answer. Headers: X-Conversation-Id, X-Message-Id, X-Model-Used, X-Gateway-Cache, "
                "X-Trace-Id, and X-Token-Count when known before the body."
            ),
            "content": {
                "text/event-stream": {"schema": {"type": "string"}},
                "application/json": {"schema": {"$ref": "#/components/schemas/AnswerOut"}},
            },
        }
    }
}


def options_from(config, context, system: str = "") -> TurnOptions:
    config = config or ChatConfig()
    context = context or ChatContext()
    return TurnOptions(
        tier=config.model,
        temperature=config.temperature,
        max_tokens=config.maxTokens,
        include_history=context.includeHistory,
        system=system,
        tools=tuple(dict.fromkeys(config.tools or ())),
        use_rag=context.useRAG,
    )


def message_text(message: MessageIn) -> str | None:
    if message.content is not None:
        return message.content
    if message.parts is not None:
        return "".join(
            p["text"] for p in message.parts if p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return None


def message_data_parts(message: MessageIn, field: str) -> tuple[dict[str, Any], ...]:
    """The spec's ``dataParts`` (validated by the schema), or the UIMessage's ``data-<kind>`` parts
    as ``{"type": kind, **data}``, validated against the spec's kinds here."""
    if message.dataParts is not None:
        return tuple(dump_part(p) for p in message.dataParts)
    parts = [
        {**p["data"], "type": p["type"][5:]}
        if isinstance(p.get("data"), dict)
        else {"type": p["type"][5:], "data": p.get("data")}
        for p in message.parts or ()
        if isinstance(p.get("type"), str) and p["type"].startswith("data-")
    ]
    try:
        return tuple(validate_data_parts(parts))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise TurnError("validation_error", f"{field}: {first['msg']}.", 422, field) from None


def no_store(request, asked: TurnRequest) -> TurnRequest:
    """``Cache-Control: no-store`` on the request: no cached answer for it, and its answer not kept."""
    if "no-store" not in request.headers.get("Cache-Control", "").lower():
        return asked
    return dataclasses.replace(asked, options=dataclasses.replace(asked.options, cache=False))


def chat_uuid(user, chat_id: str) -> uuid.UUID:
    return as_uuid(chat_id) or uuid.uuid5(CHAT_ID_NAMESPACE, f"{user.pk}:{chat_id}")


def turn_request(user, payload: ChatRequest) -> TurnRequest:
    """What the request asks for (sync: the AI SDK form's ids are looked up in the database)."""
    messages = payload.messages
    texts = []
    for i, message in enumerate(messages):
        text = message_text(message)
        if text is None:
            raise TurnError(
                "validation_error",
                f"messages[{i}]: give content (or AI SDK parts).",
                422,
                f"messages[{i}].content",
            )
        if len(text) > settings.CHIMERA_MAX_MESSAGE_CHARS:  # the history and system messages too
            limit = settings.CHIMERA_MAX_MESSAGE_CHARS
            raise TurnError(
                "message_too_long",
                f"messages[{i}] is {len(text):,} characters; the limit is {limit:,} per message.",
                413,
                f"messages[{i}].content",
            )
        texts.append(text)
    system = "\n\n".join(t for m, t in zip(messages, texts, strict=True) if m.role == "system" and t.strip())
    options = options_from(payload.config, payload.context, system)
    last = len(messages) - 1
    conversation_id: uuid.UUID | None = None
    new_conversation_id: uuid.UUID | None = None
    if payload.conversationId is not None:
        conversation_id = payload.conversationId  # preparing the turn answers 404 if it is not theirs
    elif payload.id:
        cid = chat_uuid(user, payload.id)
        owner = store.conversation_owner(cid)
        if owner is not None and owner != user.pk:
            raise NotFound()
        if owner is None:
            new_conversation_id = cid
        else:
            conversation_id = cid

    if payload.trigger == "regenerate-message" and conversation_id is not None:
        named = as_uuid(payload.messageId)  # a client-made id (not ours) means "the last answer"
        answer_id = store.answer_to_regenerate(conversation_id, named)
        if answer_id is not None:
            return TurnRequest.regenerate(user, answer_id, options, conversation_id)
        if named is not None:
            raise NotFound("There is no answer with that id in this conversation.")

    if messages[last].role != "user":
        raise TurnError(
            "last_message_not_user", "The last message must be the user's.", 422, f"messages[{last}].role"
        )
    try:
        content = validate_content(texts[last])
    except TurnError as exc:
        exc.field = f"messages[{last}].content"
        raise
    data_parts = message_data_parts(messages[last], f"messages[{last}].parts")
    if conversation_id is not None:
        edited = as_uuid(payload.messageId) if payload.trigger == "submit-message" else None
        if edited is not None and store.is_user_message(conversation_id, edited):
            # useChat's edit: sendMessage({text, messageId}) replaces that user message.
            return TurnRequest.edit(user, edited, content, options, conversation_id, data_parts=data_parts)
        return TurnRequest.send(user, content, options, conversation_id, data_parts=data_parts)
    history = tuple(
        (m.role, t)
        for m, t in zip(messages[:last], texts[:last], strict=True)
        if m.role in ("user", "assistant") and t.strip()
    )
    return TurnRequest.send(
        user,
        content,
        options,
        new_conversation_id=new_conversation_id,
        history=history,
        data_parts=data_parts,
    )


@router.post(
    "/chat/v2",
    response={
        200: AnswerOut,
        400: ErrorOut,
        401: ErrorOut,
        403: ErrorOut,
        404: ErrorOut,
        409: ErrorOut,
        413: ErrorOut,
        422: ErrorOut,
        429: ErrorOut,
        503: ErrorOut,
    },
    summary="Send a message; the answer streams back (AI SDK UI message stream)",
    openapi_extra=STREAM_DOC,
    auth=[deferred_api_key, session],
)
async def chat_v2(request, payload: ChatRequest) -> HttpResponseBase:
    auth = request.auth

    def asked() -> TurnRequest:  # on the database thread, in the job that saves the message
        return no_store(request, turn_request(caller(auth), payload))

    try:
        turn = await start_turn(asked)
    except IntegrityError:  # two first requests of one new chat id at once
        raise TurnError(
            "conflict", "That conversation is being created by another request; retry.", 409
        ) from None
    return await streams.respond(request, turn)


@router.get(
    "/chat/v2/{chat_id}/stream",
    response={204: None, 401: ErrorOut, 404: ErrorOut},
    summary="Resume: the answer in flight in this chat (the AI SDK's reconnectToStream), else 204",
    openapi_extra={
        "responses": {
            200: {
                "description": "UI message stream",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        }
    },
)
async def resume_chat(request, chat_id: str) -> HttpResponseBase:
    user = request.auth
    conversation = await aconversation_for(user, chat_uuid(user, chat_id))
    message = None
    if conversation.active_leaf_id:
        message = await Message.objects.filter(
            pk=conversation.active_leaf_id, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING
        ).afirst()
    if message is None:
        return HttpResponse(status=204)
    turn = running_turn(message.id)
    return await streams.attach_response(
        turn if turn is not None and turn.user_id == user.pk else None, message
    )
