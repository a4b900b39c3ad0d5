"""Branches (select, fork) through the page's views, and what the page renders."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat import tree
from chat.models import Conversation, Message
from chat.render import markdown_html

pytestmark = pytest.mark.django_db


def _conversation_with_two_answers(user):
    conversation = Conversation.objects.create(user=user, title="Branches")
    question = Message.objects.create(conversation=conversation, role="user", content="Question")
    first = Message.objects.create(
        conversation=conversation, parent_message=question, role="assistant", content="First answer"
    )
    second = Message.objects.create(
        conversation=conversation, parent_message=question, role="assistant", content="Second answer"
    )
    follow = Message.objects.create(
        conversation=conversation, parent_message=first, role="user", content="More?"
    )
    conversation.active_leaf = second
    conversation.save()
    return conversation, question, first, second, follow


def test_the_active_branch_shows_its_position_among_siblings(alice):
    conversation, _, first, second, _ = _conversation_with_two_answers(alice)
    views = tree.branch_messages(conversation)
    assert [v.content for v in views] == ["Question", "Second answer"]
    assert (views[1].sibling_index, views[1].sibling_count, views[1].prev_sibling) == (2, 2, first.id)


def test_selecting_a_sibling_follows_it_down_to_its_newest_leaf_and_survives_a_reload(client, alice):
    conversation, _, first, _, follow = _conversation_with_two_answers(alice)
    client.force_login(alice)
    response = client.post(reverse("chat:select", args=[conversation.id, first.id]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "More?" in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.active_leaf_id == follow.id
    page = client.get(reverse("chat:conversation", args=[conversation.id])).content.decode()
    assert "First answer" in page and "Second answer" not in page


def test_forking_copies_the_path_into_a_new_conversation_that_points_back(client, alice):
    conversation, question, first, _, _ = _conversation_with_two_answers(alice)
    client.force_login(alice)
    response = client.post(reverse("chat:fork", args=[conversation.id, first.id]))
    new = Conversation.objects.exclude(pk=conversation.pk).get()
    assert response.status_code == 302 and response.url == reverse("chat:conversation", args=[new.id])
    assert new.parent_id == conversation.id and new.user_id == alice.id
    assert [m.content for m in tree.branch_messages(new)] == ["Question", "First answer"]
    assert Message.objects.filter(conversation=conversation).count() == 4  # the original is untouched


def test_markdown_is_rendered_and_sanitised():
    html = markdown_html(
        "**bold** <script>alert(1)</script> [x](javascript:alert(1)) `code`\n\n```py\nx = 1\n```"
    )
    assert (
        "<strong>bold</strong>" in html and "<code>code</code>" in html and '<pre class="highlight">' in html
    )
    assert "<script" not in html and "&lt;script&gt;" in html and 'href="javascript' not in html


def test_an_answer_left_streaming_by_a_dead_process_is_shown_as_interrupted(client, alice):
    from datetime import timedelta

    from django.utils import timezone

    conversation = Conversation.objects.create(user=alice, title="Crash")
    question = Message.objects.create(conversation=conversation, role="user", content="Q")
    answer = Message.objects.create(
        conversation=conversation,
        parent_message=question,
        role="assistant",
        content="Partial text",
        status=Message.Status.STREAMING,
    )
    Message.objects.filter(pk=answer.pk).update(updated_at=timezone.now() - timedelta(minutes=10))
    client.force_login(alice)
    page = client.get(reverse("chat:conversation", args=[conversation.id])).content.decode()
    answer.refresh_from_db()
    assert answer.status == Message.Status.INCOMPLETE and answer.content == "Partial text"
    assert 'data-testid="retry-button"' in page and "Partial text" in page


def test_a_finished_answer_is_shown_as_html_not_as_escaped_markup(client, alice):
    conversation = Conversation.objects.create(user=alice, title="Markup")
    question = Message.objects.create(conversation=conversation, role="user", content="Q")
    Message.objects.create(
        conversation=conversation,
        parent_message=question,
        role="assistant",
        content="**Bold** answer",
        status=Message.Status.COMPLETE,
    )
    client.force_login(alice)
    page = client.get(reverse("chat:conversation", args=[conversation.id])).content.decode()
    assert "<strong>Bold</strong> answer" in page and "&lt;p&gt;" not in page


def test_the_sidebar_search_ignores_text_no_database_can_store(client, alice, bob):
    Conversation.objects.create(user=alice, title="Quantum notes")
    Conversation.objects.create(user=bob, title="Quantum secrets")
    client.force_login(alice)
    for q in ("%00", "Quan%00tum", "%ED%A0%80Quantum"):  # NUL; a UTF-8-encoded lone surrogate
        page = client.get(reverse("chat:index") + f"?q={q}")
        assert page.status_code == 200, q
    page = client.get(reverse("chat:index") + "?q=Quan%00tum").content.decode()
    assert "Quantum notes" in page and "Quantum secrets" not in page


def test_the_model_picker_offers_only_the_tiers_of_the_persons_plan(client, alice, bob):
    import re

    bob.tier = "pro"
    bob.save()
    offered = {}
    for person in (alice, bob):
        client.force_login(person)
        page = client.get(reverse("chat:index")).content.decode()
        picker = page.split('data-testid="tier-select"', 1)[1].split("</select>", 1)[0]
        offered[person.username] = re.findall(r'<option value="(\w+)"', picker)
    assert offered == {"alice": ["fast", "balanced"], "bob": ["fast", "balanced", "powerful", "reasoning"]}
