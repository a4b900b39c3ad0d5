"""useRAG through the page and the API (passages in the prompt, sources with the answer, numbered
citations on the page), and the Run button of executable code through the page's socket."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from chat.models import Conversation, Message
from tests.api.helpers import chat, metadata_of
from tests.chat.helpers import connect, frames_until, send, status_of

pytestmark = pytest.mark.django_db(transaction=True)


def system_prompt(request: dict) -> str:
    return json.dumps(request["body"])


async def test_use_rag_on_the_page_puts_passages_in_the_prompt_and_numbers_the_citations(alice, emu, corpus):
    communicator = await connect(alice)
    await communicator.connect()
    await send(
        communicator, action="send", message="How often should I feed my sourdough starter?", use_rag="on"
    )
    frames = await frames_until(communicator, 'data-testid="message-complete"')
    await communicator.disconnect()

    sent = system_prompt(emu.requests()[-1])
    assert "[1] Sourdough" in sent and "Feed the starter twice a day" in sent
    answer = await Message.objects.aget(pk=status_of(frames)["message-id"])
    sources = [p for p in answer.data_parts if p["type"] == "source-document"]
    assert sources[0]["title"] == "Sourdough" and sources[0]["url"].startswith(
        f"/knowledge/{corpus.sourdough.id}/"
    )
    page = "".join(frames)
    assert 'data-testid="citations"' in page and f'href="{sources[0]["url"]}"' in page


def test_use_rag_through_the_api_sends_source_document_parts(
    live_server, emu, http, alice, alice_key, corpus
):
    body = {
        "messages": [{"role": "user", "content": "Which invoice is overdue?"}],
        "context": {"useRAG": True},
    }
    response, parts = chat(http, live_server.url, body, alice_key)
    documents = [p for p in parts if isinstance(p, dict) and p["type"] == "source-document"]
    assert documents and documents[0]["title"] == "Invoices 2025" and documents[0]["sourceId"]
    assert "INV-20987" in system_prompt(emu.requests()[-1])
    assert metadata_of(parts)["status"] == "complete"


def test_use_rag_off_sends_no_passages(live_server, emu, http, alice, alice_key, corpus):
    body = {"messages": [{"role": "user", "content": "Which invoice is overdue?"}]}
    response, parts = chat(http, live_server.url, body, alice_key)
    assert "INV-20987" not in system_prompt(emu.requests()[-1])
    assert not [p for p in parts if isinstance(p, dict) and p["type"] == "source-document"]


def _answer_with_code(user, code: str) -> Message:
    conversation = Conversation.objects.create(user=user, title="Code")
    question = Message.objects.create(
        conversation=conversation, role="user", content="Code?", status="complete"
    )
    answer = Message.objects.create(
        conversation=conversation,
        parent_message=question,
        role="assistant",
        content="Here:",
        status="complete",
        data_parts=[{"type": "code", "language": "python", "code": code, "executable": True}],
    )
    conversation.active_leaf = answer
    conversation.save()
    return answer


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        ("print(sum(range(10)))", ["45", "Finished"]),
        ("import sys\nprint('oops', file=sys.stderr)\nsys.exit(3)", ["oops", "Exited with code 3"]),
        ("print('x' * 10_000_000)", ["printed more than"]),  # the output limit, named
    ],
)
async def test_the_run_button_runs_the_code_in_the_sandbox_and_draws_what_it_printed(alice, emu, code, shown):
    answer = await sync_to_async(_answer_with_code)(alice, code)
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="run_code", message_id=str(answer.id), part=0)
    frames = await frames_until(communicator, 'data-testid="code-output"', timeout=60)
    await communicator.disconnect()
    assert f'id="code-output-{answer.id}-0"' in frames[-1] and 'data-testid="code-result"' in frames[-1]
    for text in shown:
        assert text in frames[-1], (text, frames[-1][:500])
    assert emu.requests() == []  # the code ran here, no model involved


async def test_the_run_button_refuses_a_part_that_is_not_runnable_code(alice, emu):
    answer = await sync_to_async(_answer_with_code)(alice, "print(1)")
    communicator = await connect(alice)
    await communicator.connect()
    await send(communicator, action="run_code", message_id=str(answer.id), part=5)
    frames = await frames_until(communicator, 'data-testid="input-error"')
    await communicator.disconnect()
    assert "not code that can be run" in frames[-1]
