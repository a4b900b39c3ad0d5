"""The tool loop through whole turns: the model asks for a tool, it runs, the result goes back, the
model answers — on each wire, with the emulator's ``[[tool:NAME {json}]]`` convention."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from chat.models import Message
from flags import runtime as flags
from tests.chat.helpers import connect, frames_until, send, status_of
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db(transaction=True)

# Which providers to switch off so that the balanced tier answers on one wire ("gateway": the
# Vercel AI Gateway, OpenAI-compatible, when its key is set).
WIRES = {
    "openai": ["google", "anthropic"],  # groq
    "gemini": ["groq", "anthropic"],
    "anthropic": ["groq", "google"],
    "gateway": [],
}
VIDEO = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"


async def answer(user, message: str, wire: str, tools=("analyzeVideo",)) -> Message:
    from asgiref.sync import sync_to_async

    await sync_to_async(flags.set_flags)({"providers": {"disabled": WIRES[wire]}})
    if wire == "gateway":
        from django.conf import settings

        settings.AI_GATEWAY_API_KEY = "vck-test"  # (the autouse guard resets it after the test)
    communicator = await connect(user)
    await communicator.connect()
    await send(communicator, action="send", message=message, tier="balanced", tools=list(tools))
    frames = await frames_until(communicator, 'data-state="idle"', timeout=60)
    await communicator.disconnect()
    return await Message.objects.aget(pk=status_of(frames)["message-id"])


@pytest.mark.parametrize("wire", ["openai", "gemini", "anthropic"])
async def test_analyze_video_runs_in_the_loop_and_the_model_answers_with_its_result(alice, emu, wire):
    alice.tier = "pro"
    await alice.asave()
    directive = json.dumps({"url": VIDEO, "question": "What happens in it?"})
    message = await answer(alice, f"Look at this [[tool:analyzeVideo {directive}]]", wire)

    assert message.status == Message.Status.COMPLETE, message.data_parts
    [call] = message.tool_invocations
    assert call["toolName"] == "analyzeVideo" and call["status"] == "success"
    assert call["args"] == {"url": VIDEO, "question": "What happens in it?"}
    assert call["result"]["answer"].startswith(f"Watching {VIDEO}")  # Gemini (emulated) saw the video
    assert call["durationMs"] >= 0
    assert "Tool results:" in message.content and "Watching" in message.content  # quoted back
    # Every provider call is metered: two steps of the answer, plus the tool's own Gemini call.
    rows = [u async for u in UsageMetric.objects.filter(message_id=message.id).order_by("created_at")]
    assert len(rows) == 3
    assert sum(1 for r in rows if r.provider == "google" and r.model == "gemini-2.5-flash") >= 1
    requests = emu.requests()
    step2 = requests[-1]["body"]
    assert "tools" in step2  # the second step may still call tools (the limit is not reached)


def _seed_usage(user) -> None:
    """A week of usage rows for generateReport to chart."""
    from datetime import timedelta

    from django.utils import timezone

    for day in range(5):
        UsageMetric.objects.create(
            user=user,
            provider="groq",
            model="llama-3.3-70b-versatile",
            tier="balanced",
            input_tokens=100 * (day + 1),
            output_tokens=50,
            cost_usd=Decimal("0.0001") * (day + 1),
            latency_ms=300,
            created_at=timezone.now() - timedelta(days=day),
        )


def _expect_search(call, message):
    assert call["result"][0]["title"] == "Sourdough", call["result"]
    sources = [p for p in message.data_parts if p["type"] == "source-document"]
    assert sources and sources[0]["title"] == "Sourdough"
    assert "Sourdough" in message.content


def _expect_report(call, message):
    charts = [p for p in message.data_parts if p["type"] == "chart"]
    assert charts and charts[0]["chartType"] in ("line", "bar", "pie", "scatter"), message.data_parts
    assert "Tool results:" in message.content


def _expect_code(call, message):
    assert call["result"]["stdout"] == "42\n" and call["result"]["exitCode"] == 0, call["result"]
    assert "42" in message.content


def _expect_query(call, message):
    rows = call["result"]["rows"]
    assert rows == [[1]], call["result"]  # her one conversation: bob's is not in her views


TOOL_CASES = {
    "searchKnowledge": ({"query": "feeding a sourdough starter", "k": 3}, _expect_search),
    "generateReport": ({"subject": "usage", "range": "7d"}, _expect_report),
    "executeCode": ({"language": "python", "code": "print(6 * 7)"}, _expect_code),
    "queryDatabase": ({"sql": "SELECT count(*) AS n FROM my_conversations"}, _expect_query),
}


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("tool", TOOL_CASES)
async def test_each_tool_runs_in_the_loop_on_each_wire(alice, bob, emu, corpus, wire, tool):
    from asgiref.sync import sync_to_async

    from chat.models import Conversation

    await Conversation.objects.acreate(user=bob, title="Bob's own")
    await sync_to_async(_seed_usage)(alice)
    args, expect = TOOL_CASES[tool]
    message = await answer(alice, f"Please [[tool:{tool} {json.dumps(args)}]]", wire, tools=(tool,))

    assert message.status == Message.Status.COMPLETE, (message.content, message.data_parts)
    [call] = message.tool_invocations
    assert (call["toolName"], call["status"], call["args"]) == (tool, "success", args), call
    assert call["durationMs"] >= 0
    expect(call, message)
    steps = [u async for u in UsageMetric.objects.filter(message_id=message.id)]
    assert len(steps) == 2  # the call, then the answer with its result: one usage row each
    first, second = [r["body"] for r in emu.requests()[-2:]]
    assert tool in json.dumps(first)  # the tool was offered (its schema published to the model)
    assert str(args.get("code", args.get("query", args.get("sql", "usage"))))[:10] in json.dumps(second)
