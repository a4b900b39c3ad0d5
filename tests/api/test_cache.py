"""The response cache as a person meets it: a hit streams like a live answer, costs nothing and says
what it saved; it is the asker's own (another user's identical prompt is a miss, by default); and
regenerate, ``Cache-Control: no-store`` and the page's "Fresh answer" toggle bypass it."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.api.helpers import DONE, chat, metadata_of, text_of
from tests.chat.conftest import _close_executor_connections  # noqa: F401  (autouse: async tests)
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = {"messages": [{"role": "user", "content": "Why do leaves change colour in autumn?"}]}


def generations(emu) -> int:
    return sum(1 for r in emu.requests() if r["body"] is not None)


def timed_reads(http, url, key, body, headers=None):
    """The answer's network reads, each with when it arrived and the text deltas it carried."""
    reads = []
    with http.stream(
        "POST", url + "/api/chat/v2", json=body, headers={"Authorization": f"Bearer {key}", **(headers or {})}
    ) as response:
        for raw in response.iter_raw():
            reads.append((time.monotonic(), raw.count(b'"text-delta"'), raw))
    parts = list(sse_parts_of(b"".join(r[2] for r in reads)))
    return response, reads, parts


def sse_parts_of(body: bytes):
    import json

    for line in body.decode().splitlines():
        if line.startswith("data: "):
            payload = line[6:]
            yield DONE if payload == DONE else json.loads(payload)


def test_a_hit_streams_in_pieces_over_time_costs_nothing_and_records_what_it_saved(
    live_server, emu, http, alice, alice_key
):
    emu.timing(provider="*", ttft_ms=5, chunk_ms=2, chunks=60)
    _, first = chat(http, live_server.url, QUESTION, alice_key)
    asked = generations(emu)

    response, reads, parts = timed_reads(http, live_server.url, alice_key, QUESTION)

    assert generations(emu) == asked  # the emulator got nothing for it
    assert response.headers["x-gateway-cache"] == "hit" == metadata_of(parts)["gatewayCache"]
    assert text_of(parts) == text_of(first)
    with_text = [at for at, deltas, _ in reads if deltas]
    assert len(with_text) > 1, "the hit arrived in one network read"
    assert with_text[-1] - with_text[0] >= 0.005  # paced, as a live answer streams
    assert with_text[-1] - with_text[0] < 5  # and still quick
    row = UsageMetric.objects.filter(cache_hit=True).get()
    assert row.cost_usd == Decimal("0") and row.saved_cost_usd > 0
    assert Decimal(metadata_of(parts)["cost"]) == 0


def test_another_users_identical_prompt_is_a_miss(live_server, emu, http, alice, alice_key, bob_key):
    chat(http, live_server.url, QUESTION, alice_key)
    asked = generations(emu)

    response, parts = chat(http, live_server.url, QUESTION, bob_key)

    assert response.headers["x-gateway-cache"] == "miss" == metadata_of(parts)["gatewayCache"]
    assert generations(emu) == asked + 1  # bob's answer came from the model, not from alice's


def test_no_store_neither_reads_nor_keeps_a_cached_answer(live_server, emu, http, alice, alice_key):
    no_store = {"Cache-Control": "no-store"}
    chat(http, live_server.url, QUESTION, alice_key, headers=no_store)  # not kept
    response, _ = chat(http, live_server.url, QUESTION, alice_key)
    assert response.headers["x-gateway-cache"] == "miss"  # kept now
    response, _ = chat(http, live_server.url, QUESTION, alice_key)
    assert response.headers["x-gateway-cache"] == "hit"

    asked = generations(emu)
    response, parts = chat(http, live_server.url, QUESTION, alice_key, headers=no_store)
    assert response.headers["x-gateway-cache"] == "miss" and generations(emu) == asked + 1
    assert parts[-1] == DONE


async def test_the_pages_fresh_toggle_and_regenerate_ask_the_model_again(alice, emu):
    from chat.models import Message
    from tests.chat.helpers import connect, frames_until, send, status_of

    async def ask(**fields):
        communicator = await connect(alice)
        await communicator.connect()
        await send(communicator, **fields)
        frames = await frames_until(communicator, 'data-testid="message-complete"', timeout=60)
        await communicator.disconnect()
        return status_of(frames)["message-id"]

    text = QUESTION["messages"][0]["content"]
    await ask(action="send", message=text)
    asked = generations(emu)
    await ask(action="send", message=text, fresh="on")
    assert generations(emu) == asked + 1
    hit = await ask(action="send", message=text)
    assert generations(emu) == asked + 1  # the plain one is a hit
    assert (await Message.objects.aget(pk=hit)).metadata["gatewayCache"] == "hit"
    await ask(action="regenerate", message_id=hit)
    assert generations(emu) == asked + 2
