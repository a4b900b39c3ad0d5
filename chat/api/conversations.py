"""The conversation API: list, get (tree + active branch), rename, archive, delete, fork, select a
branch; and per message: edit (new branch), regenerate (new sibling), stop, attach."""

from __future__ import annotations

import uuid
from typing import Literal

from asgiref.sync import sync_to_async
from django.db.models import Q
from django.http.response import HttpResponseBase
from ninja import Field as NinjaField
from ninja import Query, Router, Schema

from chat import conversations, db, export, tree
from chat.access import conversation_for, message_for
from chat.api import streams
from chat.api.chat import no_store, options_from
from chat.api.schemas import (
    AnswerOut,
    ConversationDetail,
    ConversationOut,
    ConversationPage,
    ConversationPatch,
    EditIn,
    ErrorOut,
    MessageRef,
    StopOut,
    TurnIn,
    conversation_json,
    message_json,
)
from chat.errors import NotFound, TurnError
from chat.models import Conversation, Message
from chat.request import TurnRequest
from chat.turns import running_turn, settle_orphans, start_turn, stop_turn

router = Router(tags=["conversations"])
ERRORS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}
STREAMED = {
    "responses": {
        200: {
            "description": "The new answer as a UI message stream (or JSON with Accept: "
            "application/json), exactly as POST /api/chat/v2",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    }
}


class ListQuery(Schema):
    limit: int = NinjaField(default=20, ge=1, le=100)
    offset: int = NinjaField(default=0, ge=0, le=2**31 - 1)  # past that, a database integer overflows
    archived: bool = False
    q: str = NinjaField(default="", max_length=200)


def _detail(conversation: Conversation) -> dict:
    messages = list(Message.objects.filter(conversation=conversation).order_by("created_at"))
    by_id = {m.id: m for m in messages}
    branch = [
        {
            **message_json(by_id[v.id]),
            "siblingIndex": v.sibling_index,
            "siblingCount": v.sibling_count,
            "prevSiblingId": v.prev_sibling,
            "nextSiblingId": v.next_sibling,
        }
        for v in tree.branch_messages(conversation)
        if v.id in by_id
    ]
    return {
        **conversation_json(conversation),
        "messages": [message_json(m) for m in messages],
        "activeBranch": branch,
    }


# ---- conversations ----------------------------------------------------------------------
@router.get("", response={200: ConversationPage, **ERRORS}, summary="Your conversations, newest first")
def list_conversations(request, filters: Query[ListQuery]):
    rows = Conversation.objects.filter(user=request.auth, is_archived=filters.archived)
    q = filters.q.strip()
    if q:
        rows = rows.filter(Q(title__icontains=q) | Q(messages__content__icontains=q)).distinct()
    rows = rows.order_by("-updated_at", "-created_at")
    count = rows.count()
    items = [conversation_json(c) for c in rows[filters.offset : filters.offset + filters.limit]]
    end = filters.offset + len(items)
    return {
        "items": items,
        "count": count,
        "limit": filters.limit,
        "offset": filters.offset,
        "nextOffset": end if end < count else None,
    }


@router.get(
    "/{conversation_id}",
    response={200: ConversationDetail, **ERRORS},
    summary="A conversation with its whole message tree and the active branch",
)
def get_conversation(request, conversation_id: uuid.UUID):
    conversation = conversation_for(request.auth, conversation_id)
    settle_orphans(conversation_id=conversation.id)
    return _detail(conversation)


@router.patch(
    "/{conversation_id}", response={200: ConversationOut, **ERRORS}, summary="Rename, archive or unarchive"
)
def update_conversation(request, conversation_id: uuid.UUID, payload: ConversationPatch):
    conversation = conversation_for(request.auth, conversation_id)
    if payload.title is not None:
        conversations.rename(conversation, payload.title)
    if payload.isArchived is not None:
        conversations.set_archived(conversation, payload.isArchived)
    return conversation_json(conversation)


@router.delete("/{conversation_id}", response={204: None, **ERRORS}, summary="Delete, with all its messages")
async def delete_conversation(request, conversation_id: uuid.UUID):
    conversation = await sync_to_async(conversation_for)(request.auth, conversation_id)
    await conversations.delete(request.auth, conversation)
    return 204, None


@router.get(
    "/{conversation_id}/export",
    response={200: None, **ERRORS},
    summary="The active branch as Markdown (format=md) or JSON (format=json), with model, cost and "
    "branch position per message",
)
def export_conversation(request, conversation_id: uuid.UUID, format: Literal["md", "json"] = "md"):
    conversation = conversation_for(request.auth, conversation_id)
    return export.as_response(export.export(conversation, format))


@router.post(
    "/{conversation_id}/fork",
    response={201: ConversationOut, **ERRORS},
    summary="Copy the path to a message into a new conversation",
)
def fork_conversation(request, conversation_id: uuid.UUID, payload: MessageRef):
    conversation = conversation_for(request.auth, conversation_id)
    new = tree.fork(conversation, payload.messageId)
    if new is None:
        raise NotFound("There is no such message in that conversation.")
    return 201, conversation_json(new)


@router.post(
    "/{conversation_id}/branch",
    response={200: ConversationDetail, **ERRORS},
    summary="Make the branch through a message the active one",
)
def select_branch(request, conversation_id: uuid.UUID, payload: MessageRef):
    conversation = conversation_for(request.auth, conversation_id)
    if not tree.select_branch(conversation, payload.messageId):
        raise NotFound("There is no such message in that conversation.")
    return _detail(conversation)


# ---- messages -------------------------------------------------------------------------
@router.post(
    "/{conversation_id}/messages/{message_id}/edit",
    response={200: AnswerOut, 413: ErrorOut, 429: ErrorOut, 503: ErrorOut, **ERRORS},
    summary="Edit a user message: a new branch, answered (streamed)",
    openapi_extra=STREAMED,
)
async def edit_message(
    request, conversation_id: uuid.UUID, message_id: uuid.UUID, payload: EditIn
) -> HttpResponseBase:
    options = options_from(payload.config, payload.context)
    try:
        asked = TurnRequest.edit(request.auth, message_id, payload.content, options, conversation_id)
    except TurnError as exc:
        if exc.field == "message":
            exc.field = "content"
        raise
    return await streams.respond(request, await start_turn(asked))


@router.post(
    "/{conversation_id}/messages/{message_id}/regenerate",
    response={200: AnswerOut, 429: ErrorOut, 503: ErrorOut, **ERRORS},
    summary="Regenerate an answer: a new sibling (streamed)",
    openapi_extra=STREAMED,
)
async def regenerate_message(
    request, conversation_id: uuid.UUID, message_id: uuid.UUID, payload: TurnIn | None = None
) -> HttpResponseBase:
    return await _answer_again(TurnRequest.regenerate, request, conversation_id, message_id, payload)


@router.post(
    "/{conversation_id}/messages/{message_id}/continue",
    response={200: AnswerOut, 409: ErrorOut, 429: ErrorOut, 503: ErrorOut, **ERRORS},
    summary="Continue an answer cut short, in place, from where it stopped (streamed)",
    openapi_extra=STREAMED,
)
async def continue_message(
    request, conversation_id: uuid.UUID, message_id: uuid.UUID, payload: TurnIn | None = None
) -> HttpResponseBase:
    return await _answer_again(TurnRequest.extend, request, conversation_id, message_id, payload)


async def _answer_again(
    build, request, conversation_id, message_id, payload: TurnIn | None
) -> HttpResponseBase:
    """A turn on an existing answer (regenerate, continue), streamed as /api/chat/v2 streams."""
    payload = payload or TurnIn()
    asked = build(request.auth, message_id, options_from(payload.config, payload.context), conversation_id)
    return await streams.respond(request, await start_turn(no_store(request, asked)))


@router.post(
    "/{conversation_id}/messages/{message_id}/stop",
    response={200: StopOut, **ERRORS},
    summary="Stop an answer in flight (its partial text is kept)",
)
async def stop_message(request, conversation_id: uuid.UUID, message_id: uuid.UUID):
    message = await db.run(message_for, request.auth, message_id, conversation_id)
    stopped = await stop_turn(request.auth, message.id)
    await message.arefresh_from_db()
    return {"stopped": stopped, "message": message_json(message)}


@router.get(
    "/{conversation_id}/messages/{message_id}/stream",
    response={**ERRORS},
    summary="Attach to an answer: everything so far, then live (UI message stream)",
    openapi_extra={
        "responses": {
            200: {
                "description": "UI message stream",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        }
    },
)
async def attach_message(request, conversation_id: uuid.UUID, message_id: uuid.UUID) -> HttpResponseBase:
    message = await db.run(message_for, request.auth, message_id, conversation_id)
    if message.role != Message.Role.ASSISTANT:
        raise TurnError("not_an_answer", "Only answers can be attached to.", 422, "message_id")
    return await streams.attach_response(running_turn(message.id), message)
