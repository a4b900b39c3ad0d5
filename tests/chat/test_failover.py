"""Failover through the whole turn: page frames, the saved message, usage rows (real Postgres/Redis in CI)."""

from __future__ import annotations

import pytest

from chat.models import Message
from tests.chat.helpers import connect, frames_until, send, status_of, streamed_text
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _quick_retries(settings):
    settings.CHIMERA_CATALOG = {"retry": {"backoff_base_s": 0.01, "backoff_max_s": 0.02}}


async def _turn(user, text="Explain quantum computing"):
    communicator = await connect(user)
    await communicator.connect()
    await send(communicator, action="send", message=text)
    frames = await frames_until(communicator, 'data-state="idle"', timeout=60)
    await communicator.disconnect()
    message_id = status_of(frames)["message-id"]
    message = await Message.objects.aget(pk=message_id)
    usage = [u async for u in UsageMetric.objects.filter(message_id=message_id).order_by("created_at")]
    return frames, message, usage


async def test_groq_down_means_the_answer_comes_from_gemini_without_the_user_seeing_a_failure(alice, emu):
    emu.fault(provider="groq", kind="status", status=503)
    frames, message, usage = await _turn(alice)
    assert message.status == Message.Status.COMPLETE
    assert message.metadata["provider"] == "google"
    assert 'data-provider="google"' in frames[-1]
    assert "provider-switch" not in "".join(frames)  # failures before the first token are invisible
    assert streamed_text(frames, str(message.id)) == message.content
    failed = [u for u in usage if u.error]
    assert failed and all(u.provider == "groq" and u.status_code == 503 for u in failed)
    assert [u.provider for u in usage if not u.error] == ["google"]


async def test_a_stream_cut_after_20_tokens_is_continued_and_nothing_is_lost(alice, emu):
    emu.fault(provider="groq", kind="cut", after_tokens=20, times=1)
    frames, message, usage = await _turn(alice)
    joined = "".join(frames)
    before_switch = joined.split('data-testid="provider-switch"', 1)[0]
    first_part = streamed_text([before_switch], str(message.id))
    assert 'data-testid="provider-switch"' in joined  # the page was told
    assert len(first_part.split()) >= 15
    assert message.status == Message.Status.COMPLETE
    assert message.content.startswith(first_part)  # the 20 tokens' text is kept...
    assert len(message.content) > len(first_part)  # ...and the continuation follows it
    assert streamed_text(frames, str(message.id)) == message.content  # no duplicated or lost words
    assert message.metadata["switches"] and message.metadata["switches"][0]["mode"] == "continue"
    assert len(usage) >= 2 and usage[0].error and not usage[-1].error  # both attempts have usage rows
    assert usage[0].output_tokens > 0


async def test_every_provider_down_keeps_the_message_and_offers_a_retry(alice, emu):
    for provider in ("groq", "gemini", "anthropic"):
        emu.fault(provider=provider, kind="status", status=503)
    frames, message, usage = await _turn(alice, "Is anyone there?")
    question = await Message.objects.aget(pk=message.parent_message_id)
    assert question.content == "Is anyone there?"  # the user's message is saved
    assert message.status == Message.Status.ERROR and message.content == ""
    assert 'data-testid="chat-error"' in frames[-1] and 'data-testid="retry-button"' in frames[-1]
    assert "try again" in frames[-1].lower()
    assert {u.provider for u in usage} == {"groq", "google", "anthropic"} and all(u.error for u in usage)

    emu.clear()  # the providers come back: Retry answers the same question
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="regenerate", message_id=str(message.id))
    retry_frames = await frames_until(communicator, 'data-testid="message-complete"', timeout=60)
    await communicator.disconnect()
    retried = await Message.objects.aget(pk=status_of(retry_frames)["message-id"])
    assert retried.parent_message_id == question.id and retried.status == Message.Status.COMPLETE


async def test_a_partial_answer_survives_when_every_provider_then_fails(alice, emu):
    emu.fault(provider="groq", kind="cut", after_tokens=10)
    for provider in ("gemini", "anthropic"):
        emu.fault(provider=provider, kind="status", status=503)
    frames, message, usage = await _turn(alice)
    assert message.status == Message.Status.INCOMPLETE
    assert len(message.content.split()) >= 8
    assert message.content.startswith(streamed_text(frames, str(message.id))[:20])
    assert 'data-testid="retry-button"' in frames[-1] and "partial answer is kept" in frames[-1]
