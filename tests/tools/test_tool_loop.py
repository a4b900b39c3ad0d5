"""The tool loop through whole turns: the model asks for a tool, it runs, the result goes back, the
model answers — on each wire, with the emulator's ``[[tool:NAME {json}]]`` convention."""

from __future__ import annotations

import json

import pytest

from chat.models import Message
from flags import runtime as flags
from tests.chat.helpers import connect, frames_until, send, status_of
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db(transaction=True)

# Which providers to switch off so that the balanced tier answers on one wire.
WIRES = {
    "openai": ["google", "anthropic"],  # groq
    "gemini": ["groq", "anthropic"],
    "anthropic": ["groq", "google"],
}
VIDEO = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"


async def answer(user, message: str, wire: str, tools=("analyzeVideo",)) -> Message:
    from asgiref.sync import sync_to_async

    await sync_to_async(flags.set_flags)({"providers": {"disabled": WIRES[wire]}})
    communicator = await connect(user)
    await communicator.connect()
    await send(communicator, action="send", message=message, tier="balanced", tools=list(tools))
    frames = await frames_until(communicator, 'data-state="idle"', timeout=60)
    await communicator.disconnect()
    return await Message.objects.aget(pk=status_of(frames)["message-id"])


@pytest.mark.parametrize("wire", WIRES)
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
