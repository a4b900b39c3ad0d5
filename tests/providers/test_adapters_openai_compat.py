"""The OpenAI-compatible adapter (Groq, the Vercel AI Gateway, local servers) on the openai SDK."""

from __future__ import annotations

from providers.base import ChatMessage, ProviderError, ProviderRequest
from providers.events import Finish, ReasoningDelta, ToolCall, Usage
from tests.fixtures.emulator import collect, spread_and_together

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}


async def test_it_sends_chat_messages_with_usage_requested_and_the_trace_id(emu, emulated_provider):
    request = ProviderRequest(
        model="llama-3.3-70b-versatile",
        messages=(ChatMessage("system", "Be brief."), ChatMessage("user", "Explain tides")),
        temperature=0.2,
        max_tokens=300,
        trace_id="trace-123",
    )

    await collect(emulated_provider("groq"), request)

    [sent] = emu.requests()
    assert sent["path"] == "/groq/openai/v1/chat/completions"
    assert sent["headers"]["x-trace-id"] == "trace-123"
    body = sent["body"]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Explain tides"},
    ]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["max_tokens"]) == (0.2, 300)


async def test_it_makes_exactly_one_request_per_attempt_because_sdk_retries_are_off(emu, emulated_provider):
    emu.fault(provider="groq", kind="status", status=503, times=1)

    _, error = await collect(emulated_provider("groq"), ProviderRequest("m", (ChatMessage("user", "hi"),)))

    assert isinstance(error, ProviderError)
    assert len(emu.requests()) == 1


async def test_it_reads_groq_style_reasoning_and_counts_reasoning_tokens(emu, emulated_provider):
    request = ProviderRequest(
        "openai/gpt-oss-120b", (ChatMessage("user", "Why do cats purr?"),), reasoning=True
    )

    events, error = await collect(emulated_provider("groq"), request)

    assert error is None
    reasoning = [e for e in events if isinstance(e, ReasoningDelta)]
    usage = [e for e in events if isinstance(e, Usage)][-1]  # the final counts
    [sent] = emu.requests()
    assert reasoning and usage.reasoning_tokens == sent["outcome"]["billed"]["reasoning_tokens"] > 0
    assert usage.output_tokens == sent["outcome"]["billed"]["output_tokens"] > usage.reasoning_tokens


async def test_it_assembles_a_tool_call_streamed_in_pieces(emulated_provider):
    request = ProviderRequest(
        "llama-3.3-70b-versatile",
        (ChatMessage("user", "Use get_weather for Lisbon harbour"),),
        tools=(WEATHER_TOOL,),
    )

    events, error = await collect(emulated_provider("gateway"), request)

    assert error is None
    [call] = [e for e in events if isinstance(e, ToolCall)]
    assert call.name == "get_weather" and call.id.startswith("call_")
    assert call.args == {"query": "get_weather Lisbon harbour"}
    assert events[-1] == Finish("tool-calls")


async def test_it_serves_any_openai_compatible_provider_by_name(emu, emulated_provider):
    events, error = await collect(
        emulated_provider("local"), ProviderRequest("smollm2", (ChatMessage("user", "Say hello"),))
    )

    assert error is None and isinstance(events[-1], Finish)
    assert emu.requests()[-1]["path"] == "/local/v1/chat/completions"


async def test_chunks_that_arrive_together_go_on_as_one_event_and_in_order(emu, emulated_provider):
    """Thinking and text read in one network read are one event each (one router step, one frame
    downstream), in the order they came; nothing is lost or doubled."""
    request = ProviderRequest(
        "openai/gpt-oss-120b", (ChatMessage("user", "Why do cats purr?"),), reasoning=True
    )
    await spread_and_together(emu, emulated_provider("groq"), "groq", request)
