"""Titles: after a new conversation's first answer the fast tier names it, the page shows it live;
the first words stay when the model's title is unusable; every title attempt is a usage row."""

from __future__ import annotations

import pytest

from chat import titles
from chat.models import Conversation
from chat.turns import background_work_done
from tests.chat.helpers import connect, frames_until, send, status_of
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def titles_on(settings):
    settings.CHIMERA_AUTO_TITLES = True


@pytest.mark.parametrize(
    ("written", "title"),
    [
        ('Title: "Trip to Lisbon".', "Trip to Lisbon"),
        ("**Quantum computing basics**\nMore text", "Quantum computing basics"),
        ("   ", None),
        ("...", None),
        ("word " * 20, None),
        ("x" * 90, None),
    ],
)
def test_a_title_is_cleaned_or_refused(written, title):
    assert titles.clean(written) == title


async def test_the_fast_tier_names_a_new_conversation_and_the_page_shows_it(alice, emu, titles_on):
    emu.timing(provider="*", chunks=4)
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message="Explain how tides work, please, in simple words")
    frames = await frames_until(communicator, 'data-testid="message-complete"')
    conversation_id = status_of(frames)["conversation-id"]
    shown = await frames_until(communicator, f'id="ci-{conversation_id}"[^>]*hx-swap-oob')
    await communicator.disconnect()
    await background_work_done()

    conversation = await Conversation.objects.aget(pk=conversation_id)
    assert conversation.title != "Explain how tides work, please, in simple words"
    assert 1 <= len(conversation.title.split()) <= 6 and conversation.title in shown[-1]
    asked = emu.requests()[-1]
    assert "Give this conversation a title" in str(asked["body"])
    rows = [r async for r in UsageMetric.objects.filter(conversation_id=conversation_id, message_id=None)]
    assert len(rows) == 1 and rows[0].tier == "fast" and rows[0].cost_usd is not None


async def test_an_unusable_title_keeps_the_first_words(alice, emu, titles_on):
    emu.timing(provider="*", chunks=40)  # forty words: no title
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message="Explain how tides work")
    frames = await frames_until(communicator, 'data-testid="message-complete"')
    await communicator.disconnect()
    await background_work_done()

    conversation = await Conversation.objects.aget(pk=status_of(frames)["conversation-id"])
    assert conversation.title == "Explain how tides work"
    assert await UsageMetric.objects.filter(conversation_id=conversation.id, message_id=None).acount() == 1
