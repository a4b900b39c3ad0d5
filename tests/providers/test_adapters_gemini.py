"""The Gemini adapter on google-genai."""

from __future__ import annotations

from providers.base import ChatMessage, ProviderError, ProviderRequest
from providers.events import Finish, ReasoningDelta, TextDelta, ToolCall, Usage
from tests.fixtures.emulator import collect


async def test_it_sends_system_as_instruction_and_assistant_turns_as_model(emu, emulated_provider):
    request = ProviderRequest(
        model="gemini-3.8-flash",
        messages=(
            ChatMessage("system", "Be brief."),
            ChatMessage("user", "Name a river"),
            ChatMessage("assistant", "The Nile."),
            ChatMessage("user", "Another one"),
            ChatMessage("user", "In Europe please"),
        ),
        max_tokens=200,
    )

    await collect(emulated_provider("google"), request)

    [sent] = emu.requests()
    assert sent["path"] == "/gemini/v1beta/models/gemini-3.8-flash:streamGenerateContent"
    assert sent["query"] == {"alt": "sse"}
    assert sent["headers"]["x-goog-api-key"] == "[redacted]"
    body = sent["body"]
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][-1]["parts"] == [{"text": "Another one"}, {"text": "In Europe please"}]
    assert body["generationConfig"]["maxOutputTokens"] == 200
    assert "thinkingConfig" not in body["generationConfig"]


async def test_it_asks_for_thoughts_and_streams_them_as_reasoning(emu, emulated_provider):
    request = ProviderRequest(
        "gemini-3.8-pro", (ChatMessage("user", "Why is the sea salty?"),), reasoning=True
    )

    events, error = await collect(emulated_provider("google"), request)

    assert error is None
    thinking = emu.requests()[-1]["body"]["generationConfig"]["thinkingConfig"]
    assert thinking.get("includeThoughts", thinking.get("include_thoughts")) is True
    reasoning = [e for e in events if isinstance(e, ReasoningDelta)]
    usage = [e for e in events if isinstance(e, Usage)][-1]  # the final counts
    assert reasoning and usage.reasoning_tokens == len(reasoning)
    assert usage.output_tokens == len(reasoning) + sum(isinstance(e, TextDelta) for e in events)


async def test_it_returns_function_calls_without_executing_them(emulated_provider):
    tool = {"name": "lookup_order", "description": "Find an order", "parameters": {"type": "object"}}
    request = ProviderRequest(
        "gemini-3.8-flash", (ChatMessage("user", "Please lookup_order 1234 status"),), tools=(tool,)
    )

    events, error = await collect(emulated_provider("google"), request)

    assert error is None
    [call] = [e for e in events if isinstance(e, ToolCall)]
    assert call.name == "lookup_order" and call.args == {"query": "lookup_order status"}
    assert events[-1] == Finish("tool-calls")


async def test_it_makes_exactly_one_request_per_attempt(emu, emulated_provider):
    emu.fault(provider="gemini", kind="status", status=500, times=1)

    _, error = await collect(
        emulated_provider("google"), ProviderRequest("gemini-3.8-flash", (ChatMessage("user", "hi"),))
    )

    assert isinstance(error, ProviderError) and error.status == 500 and error.retryable
    assert len(emu.requests()) == 1
