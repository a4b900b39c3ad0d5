"""What a model or a tool writes is not checked at the door: a NUL in a model's tool arguments must
not make the final write of the answer fail (PostgreSQL refuses NUL in text and in jsonb)."""

from __future__ import annotations

import pytest

from chat.models import Message
from flags import runtime as flags
from tests.chat.helpers import connect, frames_until, send, status_of
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db(transaction=True)


async def test_tool_arguments_with_a_nul_are_saved_without_it(alice, emu):
    from asgiref.sync import sync_to_async

    await sync_to_async(flags.set_flags)({"providers": {"disabled": ["google", "anthropic"]}})
    # The message holds the six characters \u0000 (storable); the model's JSON arguments hold a NUL.
    message = 'Find [[tool:searchKnowledge {"query": "comets\\u0000 and stars"}]]'
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message=message, tools="on")
    frames = await frames_until(communicator, 'data-state="idle"', timeout=60)
    await communicator.disconnect()

    answer = await Message.objects.aget(pk=status_of(frames)["message-id"])
    assert answer.status == Message.Status.COMPLETE, answer.content
    [call] = answer.tool_invocations
    # The tool refused the NUL (the model read why); the invocation is saved, without the NUL.
    assert call["status"] == "error" and "must not contain NUL" in call["error"]
    assert call["args"]["query"] == "comets and stars"
    assert "\x00" not in answer.content and "Tool results:" in answer.content
    assert await UsageMetric.objects.filter(message_id=answer.id).acount() == 2  # both steps billed
