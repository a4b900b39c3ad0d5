"""Managing a conversation, for the page and the API alike: rename, archive, delete. The caller has
already checked that it is the person's own (``chat.access.conversation_for``)."""

from __future__ import annotations

from chat.access import message_for
from chat.errors import NotFound
from chat.models import Conversation, Message
from chat.request import validate_content
from chat.turns import stop_turn
from knowledge.index import aforget_conversation

TITLE_MAX = 200


def rename(conversation: Conversation, title: str) -> bool:
    """A new title (trimmed, one line, at most TITLE_MAX); an empty one changes nothing."""
    title = " ".join(title.split())[:TITLE_MAX]
    if not title or title == conversation.title:
        return False
    conversation.title = title
    conversation.save(update_fields=["title", "updated_at"])
    return True


def set_archived(conversation: Conversation, archived: bool) -> None:
    if conversation.is_archived != archived:
        conversation.is_archived = archived
        conversation.save(update_fields=["is_archived", "updated_at"])


async def delete(user, conversation: Conversation) -> None:
    """Stop its answers still being written, delete it with its messages, and forget its passages."""
    async for message_id in Message.objects.filter(
        conversation=conversation, status=Message.Status.STREAMING
    ).values_list("id", flat=True):
        await stop_turn(user, message_id)
    conversation_id = conversation.id
    await conversation.adelete()
    await aforget_conversation(conversation_id)  # its messages stop being knowledge


def revise(user, message_id, content) -> Message:
    """Edit a user message in place ("Save"): its text replaced and marked edited, no new answer
    (the answers below it stay as they are). Edit-and-regenerate is a turn (TurnRequest.edit)."""
    text = validate_content(content)
    message = message_for(user, message_id)
    if message.role != Message.Role.USER:
        raise NotFound("There is no message of yours with that id to edit.")
    if message.content != text:
        message.content = text
        message.is_edited = True
        message.save(update_fields=["content", "is_edited", "updated_at"])
    return message
