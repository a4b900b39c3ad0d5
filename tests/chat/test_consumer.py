"""The page's WebSocket on real services (Postgres and Redis in CI) with the emulator behind it."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chat.models import Conversation, Message
from chimera.asgi import application
from flags import runtime as flags
from tests.chat.helpers import connect, frames_until, send, status_of, streamed_text
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db(transaction=True)


async def count(model, **filters) -> int:
    return await model.objects.filter(**filters).acount()


async def test_it_refuses_a_socket_without_a_logged_in_session():
    communicator = await connect(user=None)
    connected, _ = await communicator.connect()
    assert connected is False


async def test_it_streams_an_answer_and_saves_both_messages(alice, emu):
    communicator = await connect(alice)
    assert (await communicator.connect())[0]
    await send(communicator, action="send", message="Explain quantum computing", tier="balanced")
    frames = await frames_until(communicator, 'data-testid="message-complete"')
    await communicator.disconnect()

    status = status_of(frames)
    message_id = status["message-id"]
    assistant = await Message.objects.aget(pk=message_id)
    user_message = await Message.objects.aget(pk=assistant.parent_message_id)
    assert user_message.role == "user" and user_message.content == "Explain quantum computing"
    assert assistant.status == Message.Status.COMPLETE
    # Streamed in several steps, and what was streamed is what was saved.
    assert sum(f.count(f"beforeend:#mc-{message_id}") for f in frames) >= 3
    assert streamed_text(frames, message_id) == assistant.content
    assert assistant.metadata["provider"] == "groq"
    assert assistant.metadata["traceId"] and assistant.metadata["tokenCount"] > 0
    assert 'data-provider="groq"' in frames[-1]
    conversation = await Conversation.objects.aget(pk=assistant.conversation_id)
    assert conversation.user_id == alice.id and conversation.active_leaf_id == assistant.id
    assert conversation.title == "Explain quantum computing"
    usage = [u async for u in UsageMetric.objects.filter(message_id=assistant.id)]
    assert len(usage) == 1 and usage[0].output_tokens > 0 and usage[0].cost_usd is not None


async def test_a_second_message_carries_the_history(alice, emu):
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message="My name is Alice.")
    frames = await frames_until(communicator, 'data-testid="message-complete"')
    conversation_id = status_of(frames)["conversation-id"]
    await send(communicator, action="send", message="What is my name?", conversation_id=conversation_id)
    await frames_until(communicator, 'data-testid="message-complete"')
    await communicator.disconnect()
    sent = emu.requests()[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "My name is Alice." and sent[2]["content"] == "What is my name?"
    assert await count(Message, conversation_id=conversation_id) == 4


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("", "Type a message"),
        ("   \n ", "Type a message"),
        ("x" * 32_001, "the limit is 32,000"),
        ("a\u0000b", "NUL character"),
        ("a\ud800b", "unpaired surrogate"),
    ],
)
async def test_it_refuses_bad_input_visibly_and_stores_nothing(alice, emu, message, expected):
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message=message)
    frames = await frames_until(communicator, 'data-testid="input-error"')
    await communicator.disconnect()
    assert expected in frames[-1]
    assert await count(Message) == 0 and await count(Conversation) == 0
    assert emu.requests() == []


async def test_a_model_tier_beyond_the_plan_is_refused_visibly(alice, emu):
    communicator = await connect(alice)  # alice is on the free plan
    await communicator.connect()
    await send(communicator, action="send", message="Hello", tier="powerful")
    frames = await frames_until(communicator, 'data-testid="input-error"')
    await communicator.disconnect()
    assert "not part of the free plan" in frames[-1] and "fast, balanced" in frames[-1]
    assert await count(Message) == 0 and emu.requests() == []


async def test_a_message_of_exactly_the_maximum_length_is_accepted(alice, emu):
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message="y" * 32_000)
    await frames_until(communicator, 'data-testid="message-complete"')
    await communicator.disconnect()
    assert await count(Message, role="user") == 1


async def test_another_users_conversation_is_not_found(alice, bob, emu):
    conversation = await Conversation.objects.acreate(user=bob, title="Bob's")
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message="Hello", conversation_id=str(conversation.id))
    frames = await frames_until(communicator, 'data-testid="input-error"')
    await communicator.disconnect()
    assert "does not exist" in frames[-1]
    assert await count(Message) == 0


async def test_it_enforces_the_rate_limit_with_a_retry_time(alice, emu):
    await asyncio.to_thread(flags.set_flags, {"rateLimit": {"freeLimit": 2}})
    communicator = await connect(alice)
    await communicator.connect()
    for n in range(2):
        await send(communicator, action="send", message=f"Message {n}")
        await frames_until(communicator, 'data-testid="message-complete"')
    await send(communicator, action="send", message="One too many")
    frames = await frames_until(communicator, 'data-testid="rate-limit-error"')
    await communicator.disconnect()
    assert "try again in" in frames[-1] and "seconds" in frames[-1]
    assert await count(Message, role="user") == 2


async def test_closing_the_socket_mid_answer_loses_nothing(alice, emu):
    emu.timing(provider="*", ttft_ms=20, chunk_ms=15, chunks=60)
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message="Tell me a long story")
    frames = await frames_until(communicator, "beforeend:#mc-")
    message_id = status_of(frames)["message-id"]
    await communicator.disconnect()  # the tab closes

    for _ in range(200):
        message = await Message.objects.aget(pk=message_id)
        if message.status != Message.Status.STREAMING:
            break
        await asyncio.sleep(0.05)
    assert message.status == Message.Status.COMPLETE
    assert len(message.content.split()) >= 50


async def test_stop_keeps_the_partial_answer(alice, emu):
    emu.timing(provider="*", ttft_ms=20, chunk_ms=40, chunks=200)
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message="Count slowly")
    frames = await frames_until(communicator, "beforeend:#mc-")
    message_id = status_of(frames)["message-id"]
    frames += await frames_until(communicator, "beforeend:#mc-")
    await send(communicator, action="stop", message_id=message_id)
    frames += await frames_until(communicator, 'data-state="idle"')
    await communicator.disconnect()
    message = await Message.objects.aget(pk=message_id)
    assert message.status == Message.Status.INCOMPLETE
    assert message.content and streamed_text(frames, message_id).startswith(message.content[:10])
    assert len(message.content.split()) < 200
    assert 'data-testid="retry-button"' in frames[-1]
    assert await count(UsageMetric, message_id=message_id) == 1


async def test_reattaching_replays_the_text_so_far_then_follows_live(alice, emu):
    emu.timing(provider="*", ttft_ms=20, chunk_ms=20, chunks=80)
    first = await connect(alice)
    await first.connect()
    await send(first, action="send", message="Stream for a while")
    frames = await frames_until(first, "beforeend:#mc-")
    message_id = status_of(frames)["message-id"]
    await first.disconnect()  # a reload

    second = await connect(alice)
    await second.connect()
    await send(second, action="attach", message_id=message_id)
    frames = await frames_until(second, 'data-testid="message-complete"')
    await second.disconnect()
    assert f'id="mc-{message_id}"' in frames[0]  # the text so far, in one piece
    message = await Message.objects.aget(pk=message_id)
    assert message.status == Message.Status.COMPLETE


async def test_regenerate_adds_a_sibling_and_edit_adds_a_branch(alice, emu):
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message="First question")
    frames = await frames_until(communicator, 'data-testid="message-complete"')
    status = status_of(frames)
    first_answer = status["message-id"]
    conversation_id = status["conversation-id"]

    await send(communicator, action="regenerate", message_id=first_answer, conversation_id=conversation_id)
    frames = await frames_until(communicator, 'data-testid="message-complete"')
    second_answer = status_of(frames)["message-id"]
    assert second_answer != first_answer
    a1 = await Message.objects.aget(pk=first_answer)
    a2 = await Message.objects.aget(pk=second_answer)
    assert a1.parent_message_id == a2.parent_message_id  # siblings
    assert "2/2" in "".join(frames)

    await send(
        communicator,
        action="edit",
        message_id=str(a1.parent_message_id),
        message="Edited question",
        conversation_id=conversation_id,
    )
    frames = await frames_until(communicator, 'data-testid="message-complete"')
    await communicator.disconnect()
    edited_answer = await Message.objects.select_related("parent_message").aget(
        pk=status_of(frames)["message-id"]
    )
    assert (
        edited_answer.parent_message.content == "Edited question" and edited_answer.parent_message.is_edited
    )
    assert edited_answer.parent_message.parent_message_id is None  # a sibling of the original question
    assert await count(Message, conversation_id=conversation_id) == 5  # nothing was deleted
    conversation = await Conversation.objects.aget(pk=conversation_id)
    assert conversation.active_leaf_id == edited_answer.id


async def test_an_identical_prompt_is_answered_from_the_cache_but_regenerate_asks_again(alice, emu):
    communicator = await connect(alice)
    await communicator.connect()
    for _ in range(2):
        await send(communicator, action="send", message="What is a qubit?")
        frames = await frames_until(communicator, 'data-testid="message-complete"')
    cached = await Message.objects.aget(pk=status_of(frames)["message-id"])
    assert cached.metadata["gatewayCache"] == "hit" and cached.metadata["cost"] == "0"
    assert len(emu.requests()) == 1  # the second answer cost nothing upstream

    await send(communicator, action="regenerate", message_id=str(cached.id))
    frames = await frames_until(communicator, 'data-testid="message-complete"')
    await communicator.disconnect()
    fresh = await Message.objects.aget(pk=status_of(frames)["message-id"])
    assert fresh.metadata["gatewayCache"] == "miss" and len(emu.requests()) == 2


async def test_the_reasoning_tier_streams_its_thinking_and_keeps_it(alice, emu):
    alice.tier = "pro"
    await alice.asave()
    communicator = await connect(alice)
    await communicator.connect()
    await send(
        communicator, action="send", message="Prove that there are infinitely many primes", tier="reasoning"
    )
    frames = await frames_until(communicator, 'data-testid="message-complete"')
    await communicator.disconnect()
    message = await Message.objects.aget(pk=status_of(frames)["message-id"])
    assert message.metadata["provider"] == "anthropic" and "opus" in message.metadata["modelUsed"]
    assert f"beforeend:#mr-{message.id}" in "".join(frames)  # thinking streamed into its own box
    thinking = [p for p in message.data_parts if p["type"] == "thinking"]
    assert thinking and thinking[0]["content"].strip()
    assert message.content and message.content not in thinking[0]["content"]


async def test_attaching_to_an_answer_whose_process_died_settles_it_and_keeps_the_text(alice, emu):
    from datetime import timedelta

    from django.utils import timezone

    conversation = await Conversation.objects.acreate(user=alice, title="Before a restart")
    question = await Message.objects.acreate(conversation=conversation, role="user", content="Q")
    answer = await Message.objects.acreate(
        conversation=conversation,
        parent_message=question,
        role="assistant",
        content="Half an answer",
        status=Message.Status.STREAMING,
    )
    await Message.objects.filter(pk=answer.pk).aupdate(updated_at=timezone.now() - timedelta(minutes=2))
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="attach", message_id=str(answer.id))
    frames = await frames_until(communicator, 'data-state="idle"')
    await communicator.disconnect()
    await answer.arefresh_from_db()
    assert answer.status == Message.Status.INCOMPLETE and answer.content == "Half an answer"
    assert 'data-testid="retry-button"' in frames[-1]


async def test_a_process_keeps_its_running_answers_alive_while_the_provider_is_silent(alice, emu, settings):
    from chat import turns

    settings.CHIMERA_HEARTBEAT_S = 0.1
    earlier = turns._heartbeat.pop("task", None)  # an earlier test's beat sleeps the default 10 s
    if earlier is not None:
        earlier.cancel()
    emu.fault(provider="groq", kind="stall", stall_ms=1500, times=1)  # a long wait for the first token
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message="Take your time")
    frames = await frames_until(communicator, 'data-state="streaming"')
    message_id = status_of(frames)["message-id"]
    first = (await Message.objects.aget(pk=message_id)).updated_at
    await asyncio.sleep(0.5)
    during = await Message.objects.aget(pk=message_id)
    assert during.status == Message.Status.STREAMING and during.content == "" and during.updated_at > first
    await frames_until(communicator, 'data-testid="message-complete"', timeout=60)
    await communicator.disconnect()


async def test_the_page_follows_an_answer_another_process_writes_then_draws_it_whole(alice, emu):
    """The same watch as the API's: the other process's checkpoints replace the text, then the end."""
    conversation = await Conversation.objects.acreate(user=alice, title="Elsewhere")
    question = await Message.objects.acreate(conversation=conversation, role="user", content="Q")
    answer = await Message.objects.acreate(
        conversation=conversation,
        parent_message=question,
        role="assistant",
        content="Hello",
        status=Message.Status.STREAMING,
    )
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="attach", message_id=str(answer.id))
    frames = await frames_until(communicator, f'id="mc-{answer.id}"')
    assert ">Hello</div>" in frames[-1]  # the text so far, replacing what the page shows

    await Message.objects.filter(pk=answer.pk).aupdate(content="Hello there")
    frames += await frames_until(communicator, f"beforeend:#mc-{answer.id}")  # what came since
    assert streamed_text(frames, str(answer.id)) == " there"
    await Message.objects.filter(pk=answer.pk).aupdate(
        content="Hello there, friend.", status=Message.Status.COMPLETE, metadata={"provider": "groq"}
    )
    frames += await frames_until(communicator, 'data-testid="message-complete"')
    await communicator.disconnect()
    assert "Hello there, friend." in frames[-1] and 'data-state="idle"' in frames[-1]


async def test_the_stored_runtime_flags_decide_the_route_of_a_turn(alice, emu):
    await asyncio.to_thread(flags.set_flags, {"providers": {"disabled": ["groq"]}})
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message="Who answers?", tier="balanced")
    frames = await frames_until(communicator, 'data-testid="message-complete"')
    await communicator.disconnect()
    message = await Message.objects.aget(pk=status_of(frames)["message-id"])
    assert message.metadata["provider"] == "google"
    assert {r["provider"] for r in emu.requests()} == {"gemini"}


async def test_a_finished_exchange_becomes_its_owners_knowledge_and_no_one_elses(alice, bob, emu, settings):
    from chat.turns import background_work_done
    from knowledge.search import asearch

    settings.CHIMERA_KNOWLEDGE_INDEX_CONVERSATIONS = True
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message="My cat Mochi only eats smoked duck.")
    frames = await frames_until(communicator, 'data-testid="message-complete"')
    await communicator.disconnect()
    await background_work_done()

    status = status_of(frames)
    answer = await Message.objects.aget(pk=status["message-id"])
    found = await asearch(alice.id, "What does Mochi eat?", k=5)
    assert found and found[0].message_id == answer.parent_message_id  # the question, ranked first
    assert found[0].conversation_id == answer.conversation_id and "smoked duck" in found[0].text
    assert any(p.message_id == answer.id for p in found)  # and the answer
    assert await asearch(bob.id, "What does Mochi eat?", k=5) == []


async def test_signing_out_closes_that_sessions_open_sockets_with_a_notice(alice, emu):
    from django.test import Client
    from django.urls import reverse

    client = Client()
    await sync_to_async(client.force_login)(alice)
    cookie = client.cookies["sessionid"].value
    headers = [
        (b"origin", b"http://127.0.0.1"),
        (b"host", b"127.0.0.1"),
        (b"cookie", f"sessionid={cookie}".encode()),
    ]
    this_session = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    other_session = await connect(alice)  # signed in elsewhere: stays open
    assert (await this_session.connect())[0] and (await other_session.connect())[0]

    await sync_to_async(client.post)(reverse("logout"))

    frames = await frames_until(this_session, 'data-testid="session-ended"')
    assert "You signed out" in frames[-1] and 'data-state="idle"' in frames[-1]
    assert (await this_session.receive_output(timeout=10)) == {"type": "websocket.close", "code": 4401}
    await send(other_session, action="send", message="Still here?")
    await frames_until(other_session, 'data-testid="message-complete"')
    await other_session.disconnect()


async def test_deactivating_an_account_closes_all_its_sockets(alice, emu):
    sockets = [await connect(alice), await connect(alice)]
    for socket in sockets:
        assert (await socket.connect())[0]
    alice.is_active = False
    await alice.asave()
    for socket in sockets:
        frames = await frames_until(socket, 'data-testid="session-ended"')
        assert "deactivated" in frames[-1]
        assert (await socket.receive_output(timeout=10))["code"] == 4401


async def test_a_send_while_an_answer_in_the_conversation_is_streaming_is_refused(alice, emu):
    emu.timing(provider="*", ttft_ms=3000)
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message="First")
    streaming = status_of(await frames_until(communicator, 'data-state="streaming"'))
    await send(communicator, action="send", message="Second", conversation_id=streaming["conversation-id"])
    frames = await frames_until(communicator, 'data-testid="input-error"')
    assert "still being written" in frames[-1]
    await frames_until(communicator, 'data-testid="message-complete"')  # the first answer is untouched
    await communicator.disconnect()
    assert await count(Message, role="user") == 1


async def test_with_streaming_switched_off_the_page_gets_the_whole_answer_in_one_frame(alice, emu):
    await asyncio.to_thread(flags.set_flags, {"enableStreaming": False})
    emu.timing(provider="*", ttft_ms=20, chunk_ms=20, chunks=30)
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message="Hello")
    frames = await frames_until(communicator, 'data-testid="message-complete"', timeout=60)
    await communicator.disconnect()
    answer_id = status_of(frames)["message-id"]
    with_text = [f for f in frames if f"beforeend:#mc-{answer_id}" in f or "message-complete" in f]
    assert len(with_text) == 1  # no piece of the answer came before the whole of it
    answer = await Message.objects.aget(pk=answer_id)
    assert len(answer.content.split()) >= 30 and answer.content.split()[0] in with_text[0]


async def test_an_unexpected_failure_is_an_error_fragment_and_the_socket_goes_on(alice, emu):
    # A row no code path writes (data parts as an object, as a hand edit in the admin could leave it)
    # makes the Run action fail in a way nobody planned for.
    conversation = await Conversation.objects.acreate(user=alice, title="Odd row")
    odd = await Message.objects.acreate(
        conversation=conversation, role="assistant", content="x", status="complete", data_parts={"0": "?"}
    )
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="run_code", message_id=str(odd.id), part=0)
    frames = await frames_until(communicator, 'data-testid="server-error"')
    assert "Something went wrong on our side" in frames[-1] and 'data-state="idle"' in frames[-1]
    await send(communicator, action="send", message="Still working?")  # the socket was not closed
    await frames_until(communicator, 'data-testid="message-complete"')
    await communicator.disconnect()
