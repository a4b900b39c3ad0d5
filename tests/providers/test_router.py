"""The router against the emulator, through the real adapters: retries, failover, the gate, the cache.

Each test gets its own in-memory breaker and its own cache namespace; backoffs are made tiny
through the catalog override (data, as in production), never by patching code.
"""

from __future__ import annotations

import asyncio
import copy
import uuid

import pytest

from flags.runtime import DEFAULTS
from providers.base import CONTINUE_INSTRUCTION, ChatMessage
from providers.breaker import Breaker
from providers.cache import ResponseCache
from providers.events import (
    AttemptFinished,
    AttemptStarted,
    Finish,
    ProviderSwitched,
    StreamError,
    TextDelta,
)
from providers.router import UNAVAILABLE, Router, get_router

QUESTION = (ChatMessage("system", "You are helpful."), ChatMessage("user", "Explain quantum computing"))
TERMINAL = (Finish, StreamError)


def flags(**changes):
    value = copy.deepcopy(DEFAULTS)
    providers = changes.pop("providers", {})
    value.update(changes)
    value["providers"].update(providers)
    return value


@pytest.fixture
def at_emulator(settings, emu):
    settings.CHIMERA_EMULATOR_URL = emu.url
    settings.CHIMERA_CATALOG = {
        "retry": {"backoff_base_s": 0.001, "backoff_max_s": 0.005, "retry_after_cap_s": 10}
    }
    return emu


class RecordingSleep:
    """The router's sleep, recorded (it still really sleeps)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(delay)


@pytest.fixture
def sleep():
    return RecordingSleep()


@pytest.fixture
def router(at_emulator, sleep):
    return Router(
        breaker=Breaker(redis_url="", cache_s=0),
        cache=ResponseCache(prefix=f"test:{uuid.uuid4().hex}"),
        sleep=sleep,
    )


async def run(router, *, tier="balanced", messages=QUESTION, caching=False, **kwargs):
    kwargs.setdefault("flags", flags(enableCaching=caching))
    return [event async for event in router.stream(tier=tier, messages=messages, **kwargs)]


def text_of(events) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def generation_requests(emu, provider=None):
    rows = [r for r in emu.requests() if r["body"] is not None]
    return [r for r in rows if provider is None or r["provider"] == provider]


def assert_ends_once(events):
    terminal = [i for i, e in enumerate(events) if isinstance(e, TERMINAL)]
    assert terminal == [len(events) - 1], f"exactly one terminal event, last: {events[-3:]}"


async def test_it_answers_from_groq_when_all_is_well(router, emu):
    events = await run(router)

    assert_ends_once(events)
    assert events[-1] == Finish("stop")
    assert [type(e) for e in events[:1]] == [AttemptStarted]
    [finished] = [e for e in events if isinstance(e, AttemptFinished)]
    assert (finished.provider, finished.model, finished.error) == ("groq", "llama-3.3-70b-versatile", "")
    assert finished.usage.input_tokens > 0 and finished.usage.output_tokens > 0
    assert finished.ttft_ms is not None and finished.latency_ms >= finished.ttft_ms
    assert text_of(events)
    [request] = generation_requests(emu)
    assert request["provider"] == "groq" and request["model"] == "llama-3.3-70b-versatile"


async def test_it_falls_back_to_google_when_groq_returns_503(router, emu):
    emu.fault(provider="groq", kind="status", status=503)

    events = await run(router)

    assert_ends_once(events)
    assert isinstance(events[-1], Finish)
    attempts = [e for e in events if isinstance(e, AttemptFinished)]
    assert [(a.provider, a.status) for a in attempts] == [("groq", 503)] * 4 + [("google", None)]
    assert all(a.error for a in attempts[:4]) and attempts[-1].error == ""
    # The gate: nothing but bookkeeping before Google's attempt, and no switch event (no content had flowed).
    google_start = next(
        i for i, e in enumerate(events) if isinstance(e, AttemptStarted) and e.provider == "google"
    )
    assert all(isinstance(e, AttemptStarted | AttemptFinished) for e in events[:google_start])
    assert not any(isinstance(e, ProviderSwitched) for e in events)
    assert text_of(events)
    assert len(generation_requests(emu, "groq")) == 4  # 1 + max_retries 3
    assert len(generation_requests(emu, "gemini")) == 1


async def test_a_429_retry_after_is_honoured_then_the_same_provider_answers(router, emu, sleep):
    emu.fault(provider="groq", kind="status", status=429, retry_after=1, times=1)

    events = await run(router)

    assert isinstance(events[-1], Finish)
    assert sleep.delays == [1.0]
    assert [(a.provider, a.status) for a in events if isinstance(a, AttemptFinished)] == [
        ("groq", 429),
        ("groq", None),
    ]


async def test_a_retry_after_beyond_the_cap_moves_on_instead_of_waiting(router, emu, sleep):
    emu.fault(provider="groq", kind="status", status=429, retry_after=120)

    events = await run(router)

    assert isinstance(events[-1], Finish)
    assert sleep.delays == []
    assert [a.provider for a in events if isinstance(a, AttemptFinished)] == ["groq", "google"]


async def test_retries_back_off_exponentially_with_jitter(router, emu, sleep, settings):
    settings.CHIMERA_CATALOG = {"retry": {"backoff_base_s": 0.01, "backoff_max_s": 0.03}}
    emu.fault(provider="groq", kind="status", status=500, times=3)

    events = await run(router)

    assert isinstance(events[-1], Finish)
    assert len(sleep.delays) == 3
    for delay, step in zip(sleep.delays, (0.01, 0.02, 0.03), strict=True):
        assert step / 2 <= delay <= step


async def test_a_groq_cut_after_20_tokens_is_continued_by_google(router, emu, settings):
    settings.CHIMERA_CATALOG = {**settings.CHIMERA_CATALOG, "providers": {"groq": {"max_retries": 0}}}
    emu.fault(provider="groq", kind="cut", after_tokens=20)

    events = await run(router)

    assert_ends_once(events)
    assert isinstance(events[-1], Finish)
    [switch] = [e for e in events if isinstance(e, ProviderSwitched)]
    assert (switch.from_provider, switch.to_provider, switch.mode) == ("groq", "google", "continue")
    at = events.index(switch)
    before, after = text_of(events[:at]), text_of(events[at:])
    assert len([e for e in events[:at] if isinstance(e, TextDelta)]) == 20
    assert after.strip()
    # Google was asked to continue the partial answer, not to start again.
    [google] = generation_requests(emu, "gemini")
    contents = google["body"]["contents"]
    assert contents[-2]["role"] == "model" and contents[-2]["parts"][0]["text"] == before
    assert contents[-1]["parts"][0]["text"] == CONTINUE_INSTRUCTION
    assert text_of(events) == before + after
    attempts = [e for e in events if isinstance(e, AttemptFinished)]
    assert [(a.provider, bool(a.error)) for a in attempts] == [("groq", True), ("google", False)]
    assert attempts[0].ttft_ms is not None  # content had flowed before the cut


async def test_a_cut_retried_on_the_same_provider_is_a_continue_switch_to_itself(router, emu):
    emu.fault(provider="groq", kind="cut", after_tokens=20, times=1)

    events = await run(router)

    assert isinstance(events[-1], Finish)
    [switch] = [e for e in events if isinstance(e, ProviderSwitched)]
    assert (switch.from_provider, switch.to_provider, switch.mode) == ("groq", "groq", "continue")
    second = generation_requests(emu, "groq")[1]["body"]["messages"]
    assert second[-2]["role"] == "assistant" and second[-1]["content"] == CONTINUE_INSTRUCTION


async def test_anthropic_continues_by_prefill(router, emu, settings):
    settings.CHIMERA_CATALOG = {**settings.CHIMERA_CATALOG, "providers": {"groq": {"max_retries": 0}}}
    emu.fault(provider="groq", kind="cut", after_tokens=12)
    emu.fault(provider="gemini", kind="status", status=503)

    events = await run(router, flags=flags(enableCaching=False))

    assert isinstance(events[-1], Finish)
    [switch] = [e for e in events if isinstance(e, ProviderSwitched)]
    assert switch.to_provider == "anthropic" and switch.mode == "continue"
    before = text_of(events[: events.index(switch)])
    [request] = generation_requests(emu, "anthropic")
    last = request["body"]["messages"][-1]
    assert last["role"] == "assistant"
    assert (
        last["content"] if isinstance(last["content"], str) else last["content"][0]["text"]
    ) == before.rstrip()


async def test_when_every_provider_is_down_it_ends_with_one_stream_error(router, emu):
    emu.fault(provider="*", kind="status", status=503)

    events = await run(router)

    assert_ends_once(events)
    error = events[-1]
    assert isinstance(error, StreamError)
    assert error.message == UNAVAILABLE and error.retryable
    assert not any(isinstance(e, TextDelta) for e in events)
    assert len([e for e in events if isinstance(e, AttemptFinished)]) == 4 + 3 + 3


async def test_a_partial_answer_survives_when_everything_fails_after_it(router, emu):
    emu.fault(provider="groq", kind="cut", after_tokens=7)
    emu.fault(provider="gemini", kind="status", status=503)
    emu.fault(provider="anthropic", kind="status", status=500)

    events = await run(router)

    assert_ends_once(events)
    assert isinstance(events[-1], StreamError)
    assert "interrupted" in events[-1].message
    # The first 7 tokens reached the caller; the groq retries continued and were cut again.
    assert len(text_of(events).split()) >= 7
    assert not any(isinstance(e, Finish) for e in events)


async def test_a_request_every_provider_rejects_is_not_retryable(router, emu):
    emu.fault(provider="*", kind="status", status=400)

    events = await run(router)

    assert_ends_once(events)
    assert isinstance(events[-1], StreamError) and not events[-1].retryable
    # Not retried on the same provider: one attempt each.
    assert [a.provider for a in events if isinstance(a, AttemptFinished)] == ["groq", "google", "anthropic"]


async def test_a_disabled_provider_is_never_called(router, emu):
    emu.fault(provider="gemini", kind="status", status=503)

    events = await run(router, flags=flags(enableCaching=False, providers={"disabled": ["groq"]}))

    assert isinstance(events[-1], Finish)
    assert generation_requests(emu, "groq") == []
    assert [a.provider for a in events if isinstance(a, AttemptFinished)][-1] == "anthropic"


async def test_the_flags_primary_goes_first(router, emu):
    events = await run(router, flags=flags(enableCaching=False, providers={"primary": "anthropic"}))

    assert [a.provider for a in events if isinstance(a, AttemptFinished)] == ["anthropic"]


async def test_without_failover_a_failing_primary_is_an_error(router, emu):
    emu.fault(provider="groq", kind="status", status=503)

    events = await run(router, flags=flags(enableCaching=False, enableFailover=False))

    assert isinstance(events[-1], StreamError)
    assert generation_requests(emu, "gemini") == []


async def test_an_open_breaker_skips_the_provider(router, emu):
    for _ in range(5):
        await router.breaker.record_failure("groq")

    events = await run(router)

    assert isinstance(events[-1], Finish)
    assert generation_requests(emu, "groq") == []
    assert [a.provider for a in events if isinstance(a, AttemptFinished)] == ["google"]


async def test_when_the_rest_fail_the_provider_whose_breaker_opened_earlier_is_probed(router, emu):
    # Anthropic tripped in earlier turns (and is healthy again); now Groq and Gemini are down.
    for _ in range(5):
        await router.breaker.record_failure("anthropic")
    emu.fault(provider="groq", kind="status", status=503)
    emu.fault(provider="gemini", kind="status", status=503)

    events = await run(router)

    assert isinstance(events[-1], Finish) and text_of(events)
    attempts = [a.provider for a in events if isinstance(a, AttemptFinished)]
    assert attempts[-1] == "anthropic" and attempts.count("anthropic") == 1  # one probe, no retries
    assert await router.breaker.state("anthropic") == "closed"  # the probe's success closed it


async def test_of_several_open_breakers_the_one_open_longest_is_the_one_probed(at_emulator, emu, sleep):
    now = [1_000_000.0]
    breaker = Breaker(redis_url="", cache_s=0, cooldown_s=60, clock=lambda: now[0])
    router = Router(breaker=breaker, cache=ResponseCache(prefix=f"test:{uuid.uuid4().hex}"), sleep=sleep)
    for provider in ("anthropic", "groq"):  # anthropic opened first, groq 10 s later
        for _ in range(5):
            await breaker.record_failure(provider)
        now[0] += 10
    emu.fault(provider="gemini", kind="status", status=503)
    emu.fault(provider="anthropic", kind="status", status=503)

    events = await run(router)

    assert isinstance(events[-1], StreamError)  # the probe failed too: the turn ends, after one try
    attempts = [a.provider for a in events if isinstance(a, AttemptFinished)]
    assert attempts.count("anthropic") == 1 and "groq" not in attempts
    assert generation_requests(emu, "groq") == []


async def test_failed_attempts_open_the_breaker_and_later_turns_skip_groq(router, emu):
    emu.fault(provider="groq", kind="status", status=502)

    await run(router)  # 4 groq failures
    await run(router)  # the 5th opens it; no more retries on groq
    assert await router.breaker.state("groq") == "open"
    before = len(generation_requests(emu, "groq"))
    await run(router)

    assert before == 5
    assert len(generation_requests(emu, "groq")) == 5


async def test_a_repeated_prompt_is_answered_from_the_cache(router, emu):
    first = await run(router, caching=True)
    emu.clear()

    second = await run(router, caching=True)

    assert generation_requests(emu) == []
    assert text_of(second) == text_of(first)
    assert len([e for e in second if isinstance(e, TextDelta)]) > 1  # still streamed, in a few chunks
    [original] = [e for e in first if isinstance(e, AttemptFinished)]
    [hit] = [e for e in second if isinstance(e, AttemptFinished)]
    assert hit.cache_hit and not original.cache_hit
    assert (hit.provider, hit.model, hit.usage) == (original.provider, original.model, original.usage)
    assert second[-1] == Finish("stop")
    # No provider attempt: the one AttemptStarted says "a cache hit" before the text comes.
    [started] = [e for e in second if isinstance(e, AttemptStarted)]
    assert started.cache_hit and started.usage == original.usage and second[0] is started


async def test_the_cache_key_covers_the_prompt_and_its_parameters(router, emu):
    await run(router, caching=True)
    emu.clear()

    await run(router, caching=True, temperature=0.2)
    await run(router, caching=True, max_tokens=500)
    await run(router, caching=True, tier="fast")
    await run(router, caching=True, messages=(ChatMessage("user", "Explain quantum computing"),))

    assert len(generation_requests(emu)) == 4


async def test_no_cache_when_the_flag_is_off_or_on_regenerate(router, emu):
    await run(router, caching=True)
    emu.clear()

    await run(router, caching=False)
    await run(router, caching=True, use_cache=False)

    assert len(generation_requests(emu)) == 2


async def test_answers_cut_short_are_not_cached(router, emu):
    emu.timing(provider="*", chunks=200)
    await run(router, caching=True, max_tokens=5)  # finish reason "length"
    emu.clear()

    events = await run(router, caching=True, max_tokens=5)

    assert events[-1] == Finish("length")
    assert len(generation_requests(emu)) == 1


async def test_closing_the_stream_closes_the_upstream_response(router, emu):
    emu.timing(provider="groq", ttft_ms=5, chunk_ms=50, chunks=200)
    stream = router.stream(tier="balanced", messages=QUESTION, flags=flags(enableCaching=False))
    seen = 0
    async for event in stream:
        if isinstance(event, TextDelta):
            seen += 1
            if seen == 3:
                break
    await stream.aclose()
    await asyncio.sleep(0.3)

    [request] = generation_requests(emu, "groq")
    assert not request["outcome"]["finished"]
    assert request["outcome"]["tokens_sent"] < 20


async def test_an_unknown_tier_is_a_stream_error_not_an_exception(router):
    events = await run(router, tier="cheap")

    assert len(events) == 1 and isinstance(events[0], StreamError) and not events[0].retryable


async def test_the_process_wide_router_is_shared(at_emulator):
    assert get_router() is get_router()


async def test_after_only_thinking_was_shown_the_next_provider_restarts(router, emu, settings):
    settings.CHIMERA_CATALOG = {**settings.CHIMERA_CATALOG, "providers": {"anthropic": {"max_retries": 0}}}
    emu.fault(provider="anthropic", kind="cut", after_tokens=5)

    events = await run(router, tier="reasoning", reasoning=True)

    assert isinstance(events[-1], Finish)
    [switch] = [e for e in events if isinstance(e, ProviderSwitched)]
    assert (switch.from_provider, switch.to_provider, switch.mode) == ("anthropic", "groq", "restart")
    assert not any(isinstance(e, TextDelta) for e in events[: events.index(switch)])
    [groq] = generation_requests(emu, "groq")
    assert groq["body"]["model"] == "openai/gpt-oss-120b"
    assert [m["role"] for m in groq["body"]["messages"]] == ["system", "user"]  # a fresh start, no partial


async def test_through_the_gateway_when_its_key_is_set(router, emu, settings):
    settings.AI_GATEWAY_API_KEY = "vck-test"

    events = await run(router)

    assert isinstance(events[-1], Finish)
    [attempt] = [e for e in events if isinstance(e, AttemptFinished)]
    assert (attempt.provider, attempt.model) == ("gateway", "meta/llama-3.3-70b")
    [request] = generation_requests(emu)
    assert request["provider"] == "gateway" and request["headers"]["authorization"] == "[redacted]"


async def test_when_the_gateway_is_down_the_providers_are_called_directly(router, emu, settings):
    settings.AI_GATEWAY_API_KEY = "vck-test"
    settings.CHIMERA_CATALOG = {**settings.CHIMERA_CATALOG, "providers": {"gateway": {"max_retries": 0}}}
    emu.fault(provider="gateway", kind="status", status=502)

    events = await run(router)

    assert isinstance(events[-1], Finish)
    assert [a.provider for a in events if isinstance(a, AttemptFinished)] == ["gateway"] * 3 + ["groq"]


async def test_the_gateway_flag_off_bypasses_it(router, emu, settings):
    settings.AI_GATEWAY_API_KEY = "vck-test"

    events = await run(router, flags=flags(enableCaching=False, enableAIGateway=False))

    assert [a.provider for a in events if isinstance(a, AttemptFinished)] == ["groq"]
    assert generation_requests(emu, "gateway") == []
