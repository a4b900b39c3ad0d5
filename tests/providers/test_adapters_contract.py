"""What every adapter promises, checked for each SDK against the emulator over HTTP."""

from __future__ import annotations

import asyncio

import pytest

from providers.base import ChatMessage, ProviderError, ProviderRequest
from providers.events import Finish, ReasoningDelta, TextDelta, Usage
from tests.fixtures.emulator import PROVIDERS, collect

pytestmark = pytest.mark.parametrize("name", list(PROVIDERS))

# The emulator's path segment for each provider name (where faults are keyed).
SEGMENT = {"groq": "groq", "gateway": "gateway", "google": "gemini", "anthropic": "anthropic"}


def ask(name: str, text: str = "Explain photosynthesis in green plants", **kwargs) -> ProviderRequest:
    return ProviderRequest(model=PROVIDERS[name][1], messages=(ChatMessage("user", text),), **kwargs)


def text_of(events) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_it_streams_text_in_several_deltas_and_ends_with_finish(name, emulated_provider):
    events, error = await collect(emulated_provider(name), ask(name))

    assert error is None
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 10
    assert "photosynthesis" in text_of(events).lower()
    assert isinstance(events[-1], Finish) and events[-1].reason == "stop"
    assert sum(isinstance(e, Finish) for e in events) == 1
    assert isinstance(events[-2], Usage)


async def test_it_reports_usage_counted_from_the_text(name, emulated_provider):
    events, _ = await collect(emulated_provider(name), ask(name))

    usage = [e for e in events if isinstance(e, Usage)][-1]  # the final counts
    assert usage.input_tokens > 0
    assert usage.output_tokens == sum(isinstance(e, TextDelta) for e in events)


async def test_it_reports_cached_input_tokens_when_the_prompt_repeats(name, emulated_provider):
    provider = emulated_provider(name)
    long_prompt = "Please compare the main approaches to caching in web applications " * 6

    await collect(provider, ask(name, long_prompt))
    events, _ = await collect(provider, ask(name, long_prompt))

    usage = [e for e in events if isinstance(e, Usage)][-1]  # the final counts
    assert 0 < usage.cached_input_tokens <= usage.input_tokens


async def test_it_stops_at_max_tokens_with_a_length_finish(name, emulated_provider):
    events, _ = await collect(emulated_provider(name), ask(name, max_tokens=5))

    assert sum(isinstance(e, TextDelta) for e in events) == 5
    assert events[-1] == Finish("length")


async def test_it_raises_a_retryable_error_with_the_status_when_the_provider_answers_503(
    name, emu, emulated_provider
):
    emu.fault(provider=SEGMENT[name], kind="status", status=503, times=1)

    events, error = await collect(emulated_provider(name), ask(name))

    assert events == []
    assert isinstance(error, ProviderError)
    assert (error.status, error.retryable, error.provider) == (503, True, name)


async def test_it_passes_on_retry_after_from_a_429(name, emu, emulated_provider):
    emu.fault(provider=SEGMENT[name], kind="status", status=429, retry_after=2, times=1)

    _, error = await collect(emulated_provider(name), ask(name))

    assert isinstance(error, ProviderError)
    assert (error.status, error.retryable, error.retry_after) == (429, True, 2)


async def test_it_does_not_retry_a_request_the_provider_rejects_with_401(name, emu, emulated_provider):
    emu.fault(provider=SEGMENT[name], kind="status", status=401, times=1)

    _, error = await collect(emulated_provider(name), ask(name))

    assert isinstance(error, ProviderError)
    assert (error.status, error.retryable) == (401, False)
    assert error.caused_by_request


async def test_it_refuses_to_call_without_an_api_key(name, emu, emulated_provider):
    _, error = await collect(emulated_provider(name, api_key=""), ask(name))

    assert isinstance(error, ProviderError)
    assert (error.status, error.retryable) == (401, False)
    assert emu.requests() == []


async def test_it_raises_a_first_token_timeout_when_the_provider_stalls(name, emu, emulated_provider):
    emu.fault(provider=SEGMENT[name], kind="stall", stall_ms=10_000, times=1)

    events, error = await collect(emulated_provider(name, first_token_timeout_s=0.3), ask(name))

    assert [e for e in events if isinstance(e, TextDelta)] == []
    assert isinstance(error, ProviderError)
    assert error.message == "first token timeout after 0.3s"
    assert (error.status, error.retryable) == (None, True)


async def test_it_raises_a_total_timeout_when_the_stream_stalls_after_content(name, emu, emulated_provider):
    emu.fault(provider=SEGMENT[name], kind="stall", after_tokens=3, stall_ms=10_000, times=1)

    events, error = await collect(emulated_provider(name, timeout_s=1.0), ask(name))

    assert sum(isinstance(e, TextDelta) for e in events) == 3
    assert isinstance(error, ProviderError)
    assert error.message == "timeout after 1s"
    assert error.retryable


async def test_it_raises_a_retryable_error_when_the_stream_is_cut(name, emu, emulated_provider):
    provider = emulated_provider(name)
    full, _ = await collect(provider, ask(name))
    emu.fault(provider=SEGMENT[name], kind="cut", after_tokens=7, times=1)

    events, error = await collect(provider, ask(name))

    first_seven = "".join(e.text for e in [e for e in full if isinstance(e, TextDelta)][:7])
    assert text_of(events) == first_seven
    assert not any(isinstance(e, Finish) for e in events)
    assert isinstance(error, ProviderError)
    assert error.retryable and error.status is None
    assert error.message.startswith("stream cut")


async def test_it_raises_a_retryable_error_when_the_connection_drops_mid_stream(name, emu, emulated_provider):
    emu.fault(provider=SEGMENT[name], kind="cut", after_tokens=4, abort=True, times=1)

    events, error = await collect(emulated_provider(name), ask(name))

    assert sum(isinstance(e, TextDelta) for e in events) == 4
    assert isinstance(error, ProviderError)
    assert error.retryable


async def test_it_raises_a_retryable_error_on_a_malformed_chunk(name, emu, emulated_provider):
    emu.fault(provider=SEGMENT[name], kind="malformed", after_tokens=2, times=1)

    events, error = await collect(emulated_provider(name), ask(name))

    assert sum(isinstance(e, TextDelta) for e in events) == 2
    assert isinstance(error, ProviderError)
    assert error.retryable


async def test_it_raises_a_retryable_error_when_the_provider_is_unreachable(name, emulated_provider):
    provider = emulated_provider(name, base_url="http://127.0.0.1:9")

    _, error = await collect(provider, ask(name))

    assert isinstance(error, ProviderError)
    assert (error.status, error.retryable) == (None, True)


async def test_it_closes_the_upstream_stream_when_the_consumer_stops_early(name, emu, emulated_provider):
    emu.timing(provider=SEGMENT[name], chunk_ms=20)
    provider = emulated_provider(name)

    events, error = await collect(provider, ask(name), limit=3)

    assert error is None and len(events) == 3
    # The emulator notices the closed connection and stops sending.
    for _ in range(100):
        outcome = emu.requests()[-1]["outcome"]
        if not outcome["finished"]:
            await asyncio.sleep(0.05)
            if emu.requests()[-1]["outcome"]["tokens_sent"] == outcome["tokens_sent"]:
                break
    assert not emu.requests()[-1]["outcome"]["finished"]
    # And the provider's pooled client still works.
    emu.timing(provider=SEGMENT[name], chunk_ms=0)
    events, error = await collect(provider, ask(name))
    assert error is None and isinstance(events[-1], Finish)


async def test_it_streams_reasoning_before_the_answer_when_asked(name, emulated_provider):
    model = {
        "groq": "openai/gpt-oss-120b",
        "gateway": "deepseek/deepseek-r1",
        "google": "gemini-3.8-pro",
        "anthropic": "claude-sonnet-5-5",
    }[name]
    request = ProviderRequest(
        model=model, messages=(ChatMessage("user", "Why is the sky blue?"),), reasoning=True
    )

    events, error = await collect(emulated_provider(name), request)

    assert error is None
    kinds = [e.kind for e in events if isinstance(e, ReasoningDelta | TextDelta)]
    assert kinds[0] == "reasoning" and kinds[-1] == "text"
    assert kinds.index("text") > kinds.count("reasoning") - 1  # all reasoning comes first
    assert isinstance(events[-1], Finish)


async def test_health_is_true_when_the_provider_lists_its_models(name, emulated_provider):
    assert await emulated_provider(name).health() is True


async def test_health_is_false_when_the_provider_is_unreachable(name, emulated_provider):
    assert await emulated_provider(name, base_url="http://127.0.0.1:9").health() is False


async def test_health_is_false_without_an_api_key(name, emulated_provider):
    assert await emulated_provider(name, api_key="").health() is False


async def test_it_says_the_vendor_took_the_request_before_any_content(name, emulated_provider):
    events, _ = await collect(emulated_provider(name), ask(name))

    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert any(isinstance(e, Usage) for e in events[:first_text])  # billed from here on, however it ends


async def test_a_cut_stream_hands_on_what_the_vendor_reported_so_far(name, emu, emulated_provider):
    emu.fault(provider=SEGMENT[name], kind="cut", after_tokens=5, times=1)

    events, error = await collect(emulated_provider(name), ask(name))

    assert isinstance(error, ProviderError)
    usage = [e for e in events if isinstance(e, Usage)][-1]
    billed = emu.requests()[-1]["outcome"]["billed"]
    if name in ("google", "anthropic"):  # these wires report the prompt's count at the start
        assert (usage.input_tokens, usage.input_estimated) == (billed["input_tokens"], False)
    else:  # the OpenAI wire reports usage only at the end: the router estimates it
        assert usage.input_estimated
    assert usage.output_estimated  # the vendor's final output count never came


async def test_a_request_the_vendor_refuses_is_not_billed(name, emu, emulated_provider):
    emu.fault(provider=SEGMENT[name], kind="status", status=503, times=1)

    events, _ = await collect(emulated_provider(name), ask(name))

    assert not any(isinstance(e, Usage) for e in events)
    assert "billed" not in emu.requests()[-1]["outcome"]
