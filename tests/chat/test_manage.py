"""Managing conversations from the page and the API: rename, archive, delete, export, the tier kept."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from chat.models import Conversation, Message
from tests.chat.helpers import connect, frames_until, send, status_of

pytestmark = pytest.mark.django_db(transaction=True)


def conversation_with_branches(user):
    """Q → two answers (the second active, priced), then a follow-up on the first (inactive)."""
    conversation = Conversation.objects.create(user=user, title="Trip to Lisbon")
    question = Message.objects.create(
        conversation=conversation, role="user", content="Plan a trip", status="complete"
    )
    first = Message.objects.create(
        conversation=conversation,
        parent_message=question,
        role="assistant",
        content="Old plan",
        status="complete",
    )
    second = Message.objects.create(
        conversation=conversation,
        parent_message=question,
        role="assistant",
        content="New plan: **three days**",
        status="complete",
        metadata={
            "modelUsed": "groq/llama-3.3-70b-versatile",
            "provider": "groq",
            "cost": "0.001234",
            "inputTokens": 12,
            "outputTokens": 30,
        },
    )
    Message.objects.create(
        conversation=conversation, parent_message=first, role="user", content="Hidden", status="complete"
    )
    conversation.active_leaf = second
    conversation.save()
    return conversation


def test_rename_trims_to_one_line_and_ignores_an_empty_title(client, alice):
    conversation = conversation_with_branches(alice)
    client.force_login(alice)
    url = reverse("chat:rename", args=[conversation.id])
    assert client.post(url, {"title": "  Lisbon,\n  in May  "}).status_code == 302
    conversation.refresh_from_db()
    assert conversation.title == "Lisbon, in May"
    client.post(url, {"title": "Lisbon in May"})
    client.post(url, {"title": "   "})
    conversation.refresh_from_db()
    assert conversation.title == "Lisbon in May"
    assert (
        'value="Lisbon in May"'
        in client.get(reverse("chat:conversation", args=[conversation.id])).content.decode()
    )


def test_archiving_moves_a_conversation_to_the_archive_view_and_back(client, alice):
    conversation = conversation_with_branches(alice)
    client.force_login(alice)
    client.post(reverse("chat:archive", args=[conversation.id]), {"archived": "1"})
    assert "Trip to Lisbon" not in client.get("/").content.decode()
    archive = client.get("/?archived=1").content.decode()
    assert "Trip to Lisbon" in archive and 'data-testid="show-active"' in archive
    client.post(reverse("chat:archive", args=[conversation.id]), {"archived": "0"})
    assert "Trip to Lisbon" in client.get("/").content.decode()


def test_delete_removes_the_conversation_with_its_messages(client, alice):
    conversation = conversation_with_branches(alice)
    client.force_login(alice)
    response = client.post(reverse("chat:delete", args=[conversation.id]))
    assert response.status_code == 302 and response.url == reverse("chat:index")
    assert not Conversation.objects.exists() and not Message.objects.exists()


def test_export_as_markdown_has_the_active_branch_with_model_and_cost(client, alice):
    conversation = conversation_with_branches(alice)
    client.force_login(alice)
    response = client.get(reverse("chat:export", args=[conversation.id, "md"]))
    text = response.content.decode()
    assert response["Content-Type"].startswith("text/markdown")
    assert 'filename="trip-to-lisbon.md"' in response["Content-Disposition"]
    assert text.startswith("# Trip to Lisbon")
    assert "## You" in text and "Plan a trip" in text
    assert "## Assistant (groq/llama-3.3-70b-versatile · $0.001234 · answer 2 of 2)" in text
    assert "New plan: **three days**" in text and "Old plan" not in text and "Hidden" not in text


def test_a_fork_links_back_to_where_it_came_from(client, alice):
    conversation = conversation_with_branches(alice)
    client.force_login(alice)
    client.post(reverse("chat:fork", args=[conversation.id, conversation.active_leaf_id]))
    fork = Conversation.objects.exclude(pk=conversation.pk).get()
    page = client.get(reverse("chat:conversation", args=[fork.id])).content.decode()
    assert f'href="/c/{conversation.id}/" data-testid="forked-from"' in page and "Trip to Lisbon" in page


async def test_the_tier_picked_is_kept_with_the_conversation(alice, emu):
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="send", message="Hello", tier="fast")
    frames = await frames_until(communicator, 'data-testid="message-complete"')
    conversation_id = status_of(frames)["conversation-id"]
    await communicator.disconnect()
    conversation = await Conversation.objects.aget(pk=conversation_id)
    assert conversation.settings["tier"] == "fast"


async def test_save_changes_a_message_in_place_without_a_new_answer(alice, bob, emu):
    conversation = await sync_to_async(conversation_with_branches)(alice)
    question = await Message.objects.aget(conversation=conversation, content="Plan a trip")
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="save_edit", message_id=str(question.id), message="Plan a trip to Porto")
    frames = await frames_until(communicator, "Plan a trip to Porto")
    await communicator.disconnect()
    assert "New plan" in frames[-1]  # the branch re-drawn with its answer still there
    await question.arefresh_from_db()
    assert question.content == "Plan a trip to Porto" and question.is_edited
    assert await Message.objects.filter(conversation=conversation).acount() == 4  # nothing added
    assert emu.requests() == []


async def test_save_refuses_an_answer_or_someone_elses_message(alice, bob, emu):
    conversation = await sync_to_async(conversation_with_branches)(bob)
    theirs = await Message.objects.aget(conversation=conversation, content="Plan a trip")
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="save_edit", message_id=str(theirs.id), message="pwned")
    frames = await frames_until(communicator, 'data-testid="input-error"')
    await communicator.disconnect()
    assert "pwned" not in "".join(frames)
    await theirs.arefresh_from_db()
    assert theirs.content == "Plan a trip" and not theirs.is_edited
