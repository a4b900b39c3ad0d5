"""Who may see what: every read of a conversation or message on someone's behalf goes through here.

One rule, written once: a person sees only their own conversations (staff see everyone's through
the admin, not through these). Anyone else's object, a missing one and a malformed id are the
same ``NotFound``, so an id never tells whether it exists.
"""

from __future__ import annotations

import uuid
from typing import Any

from chat.errors import NotFound
from chat.models import Conversation, Message

NO_CONVERSATION = "That conversation does not exist."
NO_MESSAGE = "There is no such message in that conversation."


def as_uuid(value: Any) -> uuid.UUID | None:
    """``value`` as a UUID, or None when it is empty or not one."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def conversation_for(user, conversation_id) -> Conversation:
    """The user's conversation ``conversation_id``; NotFound otherwise."""
    pk = as_uuid(conversation_id)
    conversation = Conversation.objects.filter(pk=pk, user=user).first() if pk else None
    if conversation is None:
        raise NotFound(NO_CONVERSATION)
    return conversation


async def aconversation_for(user, conversation_id) -> Conversation:
    pk = as_uuid(conversation_id)
    conversation = await Conversation.objects.filter(pk=pk, user=user).afirst() if pk else None
    if conversation is None:
        raise NotFound(NO_CONVERSATION)
    return conversation


def _messages(user, message_id, conversation_id=None):
    pk = as_uuid(message_id)
    cid = as_uuid(conversation_id)
    if pk is None or (conversation_id is not None and cid is None):
        return None
    rows = Message.objects.filter(pk=pk, conversation__user=user)
    if cid is not None:
        rows = rows.filter(conversation_id=cid)
    return rows


def message_for(user, message_id, conversation_id=None) -> Message:
    """The user's message ``message_id`` (in ``conversation_id`` when given); NotFound otherwise."""
    rows = _messages(user, message_id, conversation_id)
    message = rows.first() if rows is not None else None
    if message is None:
        raise NotFound(NO_MESSAGE)
    return message


async def amessage_for(user, message_id, conversation_id=None) -> Message:
    rows = _messages(user, message_id, conversation_id)
    message = await rows.afirst() if rows is not None else None
    if message is None:
        raise NotFound(NO_MESSAGE)
    return message
