"""The Anthropic adapter: the anthropic SDK sends the request, the SSE body is parsed here."""

from __future__ import annotations

from providers.base import ChatMessage, ProviderError, ProviderRequest
from providers.events import Finish, ReasoningDelta, TextDelta, ToolCall, Usage
from tests.fixtures.emulator import collect, spread_and_together

MODEL = "claude-sonnet-5-5"


async def test_it_sends_system_apart_and_merges_consecutive_turns(emu, emulated_provider):
    request = ProviderRequest(
        model=MODEL,
        messages=(
            ChatMessage("system", "Be brief."),
            ChatMessage("user", "Name a river"),
            ChatMessage("user", "in Africa"),
            ChatMessage("assistant", "The Nile."),
            ChatMessage("tool", "42 km"),
            ChatMessage("user", "How long is it?"),
        ),
    )

    events, error = await collect(emulated_provider("anthropic"), request)

    assert error is None and isinstance(events[-1], Finish)
    body = emu.requests()[-1]["body"]
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {"role": "user", "content": "Name a river\n\nin Africa"},
        {"role": "assistant", "content": "The Nile."},
        {"role": "user", "content": "Tool result:\n42 km\n\nHow long is it?"},
    ]


async def test_it_never_sends_sampling_parameters_which_the_current_api_rejects(emu, emulated_provider):
    request = ProviderRequest(MODEL, (ChatMessage("user", "Explain tides"),), temperature=0.3)

    events, error = await collect(emulated_provider("anthropic"), request)

    assert error is None and isinstance(events[-1], Finish)
    body = emu.requests()[-1]["body"]
    assert "temperature" not in body and "top_p" not in body


async def test_it_lets_claude_continue_a_trailing_assistant_prefill(emu, emulated_provider):
    request = ProviderRequest(
        MODEL,
        (ChatMessage("user", "Explain tides"), ChatMessage("assistant", "Tides are caused by the moon ")),
    )

    events, error = await collect(emulated_provider("anthropic"), request)

    assert error is None
    assert emu.requests()[-1]["body"]["messages"][-1] == {
        "role": "assistant",
        "content": "Tides are caused by the moon",
    }
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text.startswith(" and to pick up where we left off")


async def test_it_enables_thinking_with_a_budget_inside_max_tokens(emu, emulated_provider):
    request = ProviderRequest(
        MODEL, (ChatMessage("user", "Why is ice slippery?"),), max_tokens=500, reasoning=True
    )

    events, error = await collect(emulated_provider("anthropic"), request)

    assert error is None
    body = emu.requests()[-1]["body"]
    assert body["thinking"]["type"] == "enabled"
    assert 1024 <= body["thinking"]["budget_tokens"] < body["max_tokens"]
    assert body["max_tokens"] - body["thinking"]["budget_tokens"] == 500
    kinds = [e.kind for e in events if isinstance(e, ReasoningDelta | TextDelta)]
    assert kinds[0] == "reasoning" and "text" in kinds


async def test_it_assembles_a_tool_use_block_from_json_deltas(emulated_provider):
    tool = {"name": "search_docs", "description": "Search the docs", "parameters": {"type": "object"}}
    request = ProviderRequest(
        MODEL, (ChatMessage("user", "Please search_docs for rate limits"),), tools=(tool,)
    )

    events, error = await collect(emulated_provider("anthropic"), request)

    assert error is None
    [call] = [e for e in events if isinstance(e, ToolCall)]
    assert call.name == "search_docs" and call.id.startswith("toolu_")
    assert call.args == {"query": "search_docs rate limits"}
    assert events[-1] == Finish("tool-calls")


async def test_it_makes_exactly_one_request_per_attempt(emu, emulated_provider):
    emu.fault(provider="anthropic", kind="status", status=529, times=1)

    _, error = await collect(
        emulated_provider("anthropic"), ProviderRequest(MODEL, (ChatMessage("user", "hi"),))
    )

    assert isinstance(error, ProviderError) and error.status == 529 and error.retryable
    assert len(emu.requests()) == 1


def ask(text: str = "Explain photosynthesis in green plants", **kwargs) -> ProviderRequest:
    return ProviderRequest(MODEL, (ChatMessage("user", text),), **kwargs)


def texts(events) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDelta)]


async def test_deltas_that_arrive_together_go_on_as_one_event_and_in_order(emu, emulated_provider):
    """Thinking and text read in one network read are one event each, in the order they came."""
    request = ask("Why do cats purr?", reasoning=True)
    provider = emulated_provider("anthropic")
    spread, together = await spread_and_together(emu, provider, "anthropic", request)
    assert isinstance(together[-2], Usage) and not together[-2].output_estimated
    assert together[-1] == Finish("stop")


async def test_an_error_event_mid_stream_is_a_retryable_error_after_the_text_before_it(
    emu, emulated_provider
):
    provider = emulated_provider("anthropic")
    full, _ = await collect(provider, ask())
    # chunk_ms 0: the tokens after the first come in one write with the error event.
    emu.timing(provider="anthropic", chunk_ms=0)
    emu.fault(provider="anthropic", kind="error", after_tokens=5, times=1)

    events, error = await collect(provider, ask())

    assert "".join(texts(events)) == "".join(texts(full)[:5])
    assert len(texts(events)) <= 2  # read with the error, handed on before it
    assert not any(isinstance(e, Finish) for e in events)
    assert isinstance(error, ProviderError)
    assert error.message == "stream error: Overloaded"
    assert error.retryable and error.status is None
    usage = [e for e in events if isinstance(e, Usage)][-1]
    assert usage.input_tokens == emu.requests()[-1]["outcome"]["billed"]["input_tokens"]


async def test_a_body_cut_mid_event_is_a_retryable_stream_cut_after_the_text_before_it(
    emu, emulated_provider
):
    provider = emulated_provider("anthropic")
    full, _ = await collect(provider, ask())
    emu.timing(provider="anthropic", chunk_ms=0)  # the tokens after the first in one write with half an event
    emu.fault(provider="anthropic", kind="cut", after_tokens=6, mid_event=True, times=1)

    events, error = await collect(provider, ask())

    assert "".join(texts(events)) == "".join(texts(full)[:6])
    assert len(texts(events)) <= 2
    assert not any(isinstance(e, Finish) for e in events)
    assert isinstance(error, ProviderError)
    assert error.message == "stream cut: the body ended mid-event"
    assert error.retryable and error.status is None
