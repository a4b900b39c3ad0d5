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

import uuid
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.db import IntegrityError
from django.http import HttpResponse
from ninja import Router

from chat.api import streams
from chat.api.schemas import (
    TOOL_DEFINITIONS,
    AnswerOut,
    ChatConfig,
    ChatContext,
    ChatRequest,
    ErrorOut,
    MessageIn,
)
from chat.models import Conversation, Message
from chat.turns import TurnError, TurnOptions, running_turn, start_turn, validate_content
from flags.runtime import aget_flags

router = Router(tags=["chat"])

# uuid5 namespace for AI SDK chat ids that are not UUIDs.
CHAT_ID_NAMESPACE = uuid.UUID("5b0c1f8e-6d2a-4c55-9d0e-8f3a2b7c9e41")

STREAM_DOC = {
    "responses": {
        200: {
            "description": (
                "An AI SDK UI message stream (`x-vercel-ai-ui-message-stream: v1`): `data: {part}` events — "
                "start, start-step, reasoning-*, text-start/text-delta/text-end, data-provider-switch, "
                "data-tool-call, data-error, message-metadata (ChimeraMetadata), error, finish-step, finish — "
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


@dataclass
class Plan:
    content: str | None
    options: TurnOptions
    conversation_id: uuid.UUID | None = None
    new_conversation_id: uuid.UUID | None = None
    seed: list[tuple[str, str]] = field(default_factory=list)
    data_parts: list[Any] | None = None
    edit_of: uuid.UUID | None = None
    regenerate_of: uuid.UUID | None = None


def options_from(config, context, system: str = "") -> TurnOptions:
    config = config or ChatConfig()
    context = context or ChatContext()
    return TurnOptions(
        tier=config.model,
        temperature=config.temperature,
        max_tokens=config.maxTokens,
        include_history=context.includeHistory,
        system=system,
        tools=tuple(TOOL_DEFINITIONS[name] for name in dict.fromkeys(config.tools or ())),
    )


def message_text(message: MessageIn) -> str | None:
    if message.content is not None:
        return message.content
    if message.parts is not None:
        return "".join(
            p["text"] for p in message.parts if p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return None


def message_data_parts(message: MessageIn) -> list[dict[str, Any]] | None:
    """The spec's ``dataParts``, or the UIMessage's ``data-<kind>`` parts as ``{"type": kind, **data}``."""
    if message.dataParts is not None:
        return message.dataParts
    parts = [
        {**p["data"], "type": p["type"][5:]}
        if isinstance(p.get("data"), dict)
        else {"type": p["type"][5:], "data": p.get("data")}
        for p in message.parts or ()
        if isinstance(p.get("type"), str) and p["type"].startswith("data-")
    ]
    return parts or None


def _as_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def chat_uuid(user, chat_id: str) -> uuid.UUID:
    return _as_uuid(chat_id) or uuid.uuid5(CHAT_ID_NAMESPACE, f"{user.pk}:{chat_id}")


def plan_turn(user, payload: ChatRequest) -> Plan:
    """What the request asks for; database lookups only for the AI SDK form's ids (sync)."""
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
        texts.append(text)
    system = "\n\n".join(t for m, t in zip(messages, texts, strict=True) if m.role == "system" and t.strip())
    plan = Plan(content=None, options=options_from(payload.config, payload.context, system))
    last = len(messages) - 1
    known = False
    if payload.conversationId is not None:
        plan.conversation_id = payload.conversationId  # start_turn answers 404 if it is not theirs
        known = True
    elif payload.id:
        cid = chat_uuid(user, payload.id)
        owner = Conversation.objects.filter(pk=cid).values_list("user_id", flat=True).first()
        if owner is not None and owner != user.pk:
            raise TurnError("not_found", "That conversation does not exist.", 404)
        if owner is None:
            plan.new_conversation_id = cid
        else:
            plan.conversation_id, known = cid, True

    if payload.trigger == "regenerate-message" and known:
        plan.regenerate_of = _answer_to_regenerate(plan.conversation_id, payload.messageId)
        if plan.regenerate_of is not None:
            return plan

    if messages[last].role != "user":
        raise TurnError(
            "last_message_not_user", "The last message must be the user's.", 422, f"messages[{last}].role"
        )
    try:
        plan.content = validate_content(texts[last])
    except TurnError as exc:
        exc.field = f"messages[{last}].content"
        raise
    plan.data_parts = message_data_parts(messages[last])
    if known:
        if payload.trigger == "submit-message" and payload.messageId:
            # useChat's edit: sendMessage({text, messageId}) replaces that user message.
            message_id = _as_uuid(payload.messageId)
            if (
                message_id
                and Message.objects.filter(
                    pk=message_id, conversation_id=plan.conversation_id, role=Message.Role.USER
                ).exists()
            ):
                plan.edit_of = message_id
    else:
        plan.seed = [
            (m.role, t)
            for m, t in zip(messages[:last], texts[:last], strict=True)
            if m.role in ("user", "assistant") and t.strip()
        ]
    return plan


def _answer_to_regenerate(conversation_id, message_id: str | None) -> uuid.UUID | None:
    answers = Message.objects.filter(conversation_id=conversation_id, role=Message.Role.ASSISTANT)
    wanted = _as_uuid(message_id)
    if wanted is not None and answers.filter(pk=wanted).exists():
        return wanted
    leaf = Conversation.objects.filter(pk=conversation_id).values_list("active_leaf_id", flat=True).first()
    if leaf is not None and answers.filter(pk=leaf).exists():
        return leaf
    return None


async def blocking_requested(request) -> bool:
    flags = await aget_flags()
    return not flags.get("enableStreaming", True) or streams.wants_json(request)


@router.post(
    "/chat/v2",
    response={
        200: AnswerOut,
        400: ErrorOut,
        401: ErrorOut,
        403: ErrorOut,
        404: ErrorOut,
        413: ErrorOut,
        422: ErrorOut,
        429: ErrorOut,
        503: ErrorOut,
    },
    summary="Send a message; the answer streams back (AI SDK UI message stream)",
    openapi_extra=STREAM_DOC,
)
async def chat_v2(request, payload: ChatRequest) -> HttpResponse:
    user = request.auth
    if payload.id or payload.trigger or payload.messageId:
        plan = await sync_to_async(plan_turn)(user, payload)
    else:
        plan = plan_turn(user, payload)  # no database work in the spec's form
    blocking = await blocking_requested(request)
    try:
        turn = await start_turn(
            user,
            plan.content,
            plan.options,
            conversation_id=plan.conversation_id,
            edit_of=plan.edit_of,
            regenerate_of=plan.regenerate_of,
            new_conversation_id=plan.new_conversation_id,
            seed=tuple(plan.seed),
            user_data_parts=plan.data_parts,
        )
    except IntegrityError:  # two first requests of one new chat id at once
        raise TurnError(
            "conflict", "That conversation is being created by another request; retry.", 409
        ) from None
    return await streams.respond(request, turn, blocking)


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
async def resume_chat(request, chat_id: str) -> HttpResponse:
    user = request.auth
    cid = chat_uuid(user, chat_id)
    conversation = await Conversation.objects.filter(pk=cid, user=user).only("id", "active_leaf_id").afirst()
    if conversation is None:
        raise TurnError("not_found", "That conversation does not exist.", 404)
    message = None
    if conversation.active_leaf_id:
        message = await Message.objects.filter(
            pk=conversation.active_leaf_id, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING
        ).afirst()
    if message is None:
        return HttpResponse(status=204)
    turn = running_turn(message.id)
    return streams.attach_response(turn if turn is not None and turn.user_id == user.pk else None, message)
