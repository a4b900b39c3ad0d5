"""The Gemini adapter: requests built and sent by google-genai, the SSE body read here."""

from __future__ import annotations

from providers.base import ChatMessage, ProviderError, ProviderRequest
from providers.events import Finish, ReasoningDelta, TextDelta, ToolCall, Usage
from tests.fixtures.emulator import collect, spread_and_together


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
        trace_id="trace-123",
    )

    await collect(emulated_provider("google", extra_headers={"x-team": "chimera"}), request)

    [sent] = emu.requests()
    assert sent["path"] == "/gemini/v1beta/models/gemini-3.8-flash:streamGenerateContent"
    assert sent["query"] == {"alt": "sse"}
    assert sent["headers"]["x-goog-api-key"] == "[redacted]"
    assert sent["headers"]["x-trace-id"] == "trace-123" and sent["headers"]["x-team"] == "chimera"
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


async def test_parts_that_arrive_together_go_on_as_one_event_and_in_order(emu, emulated_provider):
    """Thinking and text read in one network read are one event each (one router step, one frame
    downstream), in the order they came; nothing is lost or doubled."""
    request = ProviderRequest("gemini-3.8-pro", (ChatMessage("user", "Why do cats purr?"),), reasoning=True)
    spread, together = await spread_and_together(emu, emulated_provider("google"), "gemini", request)
    assert together[-1] == spread[-1] == Finish("stop")
    assert [e for e in together if isinstance(e, Usage)][-1] == [e for e in spread if isinstance(e, Usage)][
        -1
    ]


async def test_an_error_inside_the_stream_is_a_retryable_error_after_what_came_before(emu, emulated_provider):
    emu.fault(provider="gemini", kind="error", after_tokens=3, times=1)

    events, error = await collect(
        emulated_provider("google"), ProviderRequest("gemini-3.8-flash", (ChatMessage("user", "hi"),))
    )

    assert isinstance(error, ProviderError) and error.retryable
    assert "stream error" in str(error) and "overloaded" in str(error)
    assert sum(len(e.text.split()) for e in events if isinstance(e, TextDelta)) == 3
    assert isinstance(events[-1], Usage)
    assert events[-1].input_tokens == emu.requests()[-1]["outcome"]["billed"]["input_tokens"]
    assert len(emu.requests()) == 1


async def test_a_body_cut_mid_event_keeps_the_usage_reported_so_far(emu, emulated_provider):
    emu.fault(provider="gemini", kind="cut", after_tokens=4, mid_event=True, times=1)

    events, error = await collect(
        emulated_provider("google"), ProviderRequest("gemini-3.8-flash", (ChatMessage("user", "hi"),))
    )

    assert isinstance(error, ProviderError) and error.retryable
    assert "stream cut" in str(error) and "mid-event" in str(error)
    assert sum(len(e.text.split()) for e in events if isinstance(e, TextDelta)) == 4
    usage = events[-1]
    assert (
        isinstance(usage, Usage) and usage.output_estimated
    )  # the prompt's count; the router counts the rest
    assert usage.input_tokens == emu.requests()[-1]["outcome"]["billed"]["input_tokens"] > 0
