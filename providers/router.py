"""The router: one turn's stream across providers, with retries, failover and the cache.

``Router.stream`` walks the tier's route (``factory.ModelFactory.plan``), passing over choices
whose breaker is open (unless all are; and when the rest have failed, the one open longest gets
one last-resort probe). For each choice it
makes up to 1 + ``max_retries`` attempts, with jittered exponential backoff between them;
a ``Retry-After`` is honoured up to a cap, beyond which the router moves to the next
provider instead of waiting. The adapters enforce the first-token and total timeouts
from the provider's config.

The first-content gate: before the first real content (text, reasoning or a tool call)
the caller sees only ``AttemptStarted`` / ``AttemptFinished`` bookkeeping, so a failure
there is invisible: just the next attempt. After content has flowed, a failure keeps the
partial text and the next attempt (same provider or the next one) *continues* it: the
conversation plus the partial answer as a trailing assistant message (and, for wires
without assistant prefill, a short instruction to carry on without repeating). If tool
calls were involved it *restarts* instead. Either way the caller is told with one
``ProviderSwitched`` just before the new attempt's first content.

Every stream ends with exactly one ``Finish`` or exactly one ``StreamError``, and nothing
after it. Each attempt yields one ``AttemptFinished`` (its usage, latency, time to first
token, error): that is the one source of usage rows and cost; the router does not pass
the adapters' ``Usage`` events on. An attempt is billed as the vendor bills it: not at all
when the vendor never took the request (an error status, no connection); otherwise with the
counts the vendor reported, however the stream ended, and the catalog's estimate of the
prompt sent and the output seen for any count it never reported (marked estimated). A
caller that may close the stream mid-attempt (Stop) passes a ``Meter``: the attempt still
running, billed the same way, and checkpointed while it runs.

Closing the stream (``aclose()``, or cancelling the task iterating it) closes the
adapter's stream and so the upstream HTTP response.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from django.core.signals import setting_changed

from providers import estimates
from providers.base import ChatMessage, Provider, ProviderError, ProviderRequest
from providers.breaker import Breaker, get_breaker
from providers.cache import CachedAnswer, ResponseCache
from providers.catalog import RetryPolicy, get_catalog
from providers.events import (
    ACCEPTED,
    AttemptFinished,
    AttemptStarted,
    Event,
    Finish,
    ProviderSwitched,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCall,
    ToolInputDelta,
    Usage,
)
from providers.factory import ModelChoice, ModelFactory, Route, get_provider

log = logging.getLogger(__name__)

UNAVAILABLE = "All providers are unavailable right now. Your message is saved; try again."
INTERRUPTED = "The answer was interrupted and no provider could finish it. What arrived is saved; try again."
NO_PROVIDER = (
    "No AI provider is enabled for this model tier right now. Your message is saved; try again later."
)
INTERNAL = "Something went wrong while generating the answer. Your message is saved; try again."

_NO_USAGE = Usage()


class Meter:
    """A stream's attempt in flight, readable from outside the stream: ``running()`` is that attempt
    as an ``AttemptFinished``, billed as the router bills a broken one (the vendor's counts so far,
    estimates for the rest). The owner of a stream it closes mid-attempt (Stop) records that; a
    turn checkpoints it, so a process that dies mid-answer still leaves its bill behind."""

    __slots__ = ("_attempt", "_walk")

    def __init__(self) -> None:
        self._attempt: _Attempt | None = None
        self._walk: _Walk | None = None

    def running(self, error: str = "") -> AttemptFinished | None:
        attempt, walk = self._attempt, self._walk
        if attempt is None or walk is None:
            return None
        latency_ms = int((time.monotonic() - attempt.started) * 1000)
        return AttemptFinished(
            attempt.choice.provider,
            attempt.choice.model,
            _billed(attempt, walk),
            latency_ms,
            attempt.ttft_ms,
            error=error,
        )


@dataclass(slots=True)
class _Attempt:
    """One attempt's bookkeeping: where its output starts in the walk, and what the vendor reported."""

    choice: ModelChoice
    request: ProviderRequest
    started: float
    text_from: int
    reasoning_from: int
    usage: Usage | None = None  # None: the vendor has not taken the request (nothing billed)
    tool_chars: int = 0  # the JSON of the tool calls it made (output the vendor bills)
    ttft_ms: int | None = None


class Router:
    """Streams one turn across the tier's route. One per process: ``get_router()``."""

    def __init__(
        self,
        *,
        breaker: Breaker | None = None,
        factory: ModelFactory | None = None,
        cache: ResponseCache | None = None,
        backoff_base_s: float | None = None,
        backoff_max_s: float | None = None,
        retry_after_cap_s: float | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.breaker = breaker or (factory.breaker if factory else get_breaker())
        self.factory = factory or ModelFactory(breaker=self.breaker)
        self.cache = cache or ResponseCache()
        self._retry_overrides = (backoff_base_s, backoff_max_s, retry_after_cap_s)
        self._sleep = sleep
        self._rng = rng

    def retry_policy(self) -> RetryPolicy:
        base, cap, after_cap = self._retry_overrides
        policy = get_catalog().retry
        return RetryPolicy(
            backoff_base_s=policy.backoff_base_s if base is None else base,
            backoff_max_s=policy.backoff_max_s if cap is None else cap,
            retry_after_cap_s=policy.retry_after_cap_s if after_cap is None else after_cap,
        )

    def backoff(self, policy: RetryPolicy, retry: int) -> float:
        """Exponential backoff with jitter (50 to 100 % of the step) before retry number ``retry`` (0-based)."""
        step = min(policy.backoff_base_s * (2**retry), policy.backoff_max_s)
        return step * (0.5 + self._rng() / 2)

    async def stream(
        self,
        *,
        tier: str,
        messages: Sequence[ChatMessage],
        flags: Mapping[str, Any],
        temperature: float = 0.7,
        max_tokens: int = 1000,
        tools: Sequence[dict[str, Any]] = (),
        reasoning: bool = False,
        trace_id: str = "",
        use_cache: bool = True,
        store_cache: bool = True,
        cache_scope: str = "",
        meter: Meter | None = None,
        partial: str = "",
    ) -> AsyncGenerator[Event, None]:
        """Yield the turn's events; ends with exactly one ``Finish`` or one ``StreamError``.

        ``flags`` are the runtime flags, fetched once by the caller for the whole turn.
        ``use_cache=False`` skips the cache lookup (regenerate) but still stores a cacheable answer;
        ``store_cache=False`` does not store it either. ``cache_scope`` (e.g. ``"user:<id>"``) keeps
        cached answers apart per scope: one person never gets another's.
        ``meter``: where the attempt in flight can be read (see ``Meter``).
        ``partial``: an answer cut short earlier, to be continued (as after a cut, but from the start;
        only the continuation is yielded, and nothing is cached).
        """
        walk = _Walk(tuple(messages), temperature, max_tokens, tuple(tools), reasoning, trace_id)
        if partial:
            walk.text_parts.append(partial)
            walk.resuming = True
        meter = meter or Meter()
        meter._walk = walk
        try:
            route = await self.factory.plan(tier, flags)
        except ValueError as exc:  # unknown tier: the caller's mistake, not worth retrying
            yield StreamError(str(exc), retryable=False)
            return
        except Exception:
            log.exception("router: planning the route for tier %r failed", tier)
            yield StreamError(INTERNAL)
            return
        if not route.choices:
            yield StreamError(NO_PROVIDER, retryable=True)
            return

        if flags.get("enableCaching", True) and not partial and (use_cache or store_cache):
            key = self._cache_key(route, walk, cache_scope)
            walk.cache_key = key if store_cache else None
            if use_cache:
                hit = await self._cached(key)
                if hit is not None:
                    async for event in _replay(hit):
                        yield event
                    return

        breaker = self.breaker
        policy = self.retry_policy()
        mono = time.monotonic
        async with aclosing(self._candidates(route)) as candidates:
            async for choice, last_resort in candidates:
                key = choice.breaker_key
                provider = self._provider(choice, walk)
                if provider is None:
                    continue
                tries = 1 if last_resort else choice.config.max_retries + 1
                for t in range(tries):
                    request, mode, lstrip_next = self._attempt_request(choice, provider, walk)
                    yield AttemptStarted(choice.provider, choice.model, walk.attempt_no)
                    started = mono()
                    attempt = meter._attempt = _Attempt(
                        choice, request, started, len(walk.text_parts), len(walk.reasoning_parts)
                    )
                    finish: str | None = None
                    err: ProviderError | None = None
                    first = True
                    upstream = provider.stream(request)
                    # The per-chunk loop stays here, in this one generator, on purpose: per chunk it costs
                    # a few identity checks, an append and a yield, with no extra generator layer between.
                    try:
                        async for ev in upstream:
                            tp = type(ev)
                            if tp is Usage:
                                attempt.usage = ev  # type: ignore[assignment]  # checked through tp: mypy cannot narrow via the alias
                                continue
                            if tp is Finish:
                                finish = ev.reason  # type: ignore[union-attr]  # checked through tp (see above)
                                continue
                            if first:
                                if tp is TextDelta and not ev.text:  # type: ignore[union-attr]  # checked through tp (see above)
                                    continue
                                # The gate opens: this attempt's first real content.
                                first = False
                                attempt.ttft_ms = int((mono() - started) * 1000)
                                walk.client_saw_content = True
                                if walk.switch_from is not None:
                                    yield ProviderSwitched(
                                        walk.switch_from,
                                        choice.provider,
                                        choice.model,
                                        mode,
                                        walk.switch_reason,
                                    )
                                    walk.switch_from = None
                            if tp is TextDelta:
                                if lstrip_next:
                                    text = ev.text.lstrip()  # type: ignore[union-attr]  # checked through tp (see above)
                                    if not text:
                                        continue
                                    lstrip_next = False
                                    ev = TextDelta(text)
                                walk.text_parts.append(ev.text)  # type: ignore[union-attr]  # checked through tp (see above)
                            elif tp is ReasoningDelta:
                                walk.reasoning_parts.append(ev.text)  # type: ignore[union-attr]  # checked through tp (see above)
                            elif tp is ToolCall:
                                walk.tool_calls = True
                                attempt.tool_chars += len(json.dumps(ev.args))  # type: ignore[union-attr]  # checked through tp (see above)
                            elif tp is ToolInputDelta:
                                walk.tool_calls = True
                            else:
                                continue  # router-level events are ours to make, not an adapter's
                            yield ev
                    except ProviderError as exc:
                        err = exc
                    except Exception as exc:  # an adapter bug must not end the stream silently
                        log.exception("router: %s adapter raised", choice.provider)
                        err = ProviderError(f"{type(exc).__name__}: {exc}", provider=choice.provider)
                    finally:
                        # Runs on consumer aclose()/cancellation too: release the upstream response.
                        await upstream.aclose()
                    if err is None and finish is None:
                        err = ProviderError("the stream ended without a finish", provider=choice.provider)
                    latency_ms = int((mono() - started) * 1000)
                    meter._attempt = None  # over: from here on it is billed through AttemptFinished

                    if err is None:
                        assert finish is not None
                        for event in await self._succeeded(attempt, walk, finish, latency_ms):
                            yield event
                        return
                    yield await self._failed(attempt, walk, err, latency_ms, not first)
                    delay = self._retry_delay(policy, err, t, tries)
                    if delay is None:
                        break
                    if not route.all_open and not await breaker.allow(key):
                        break  # the breaker opened meanwhile (our failures or other streams'): move on
                    await self._sleep(delay)

        yield self._gave_up(walk)

    async def _candidates(self, route: Route) -> AsyncGenerator[tuple[ModelChoice, bool], None]:
        """The route's choices whose breaker lets an attempt start, in order; then, if the others all
        failed and some were passed over as open, the one that opened longest ago, as a last-resort
        probe (one attempt): an outage elsewhere must not end a turn that a provider tripped earlier
        (and perhaps healthy again) could answer. ``True`` marks that probe."""
        passed_over: list[ModelChoice] = []
        for choice in route.choices:
            key = choice.breaker_key
            if (
                not route.all_open
                and route.states.get(key, "closed") != "closed"
                and not await self.breaker.allow(key)
            ):
                passed_over.append(choice)
                continue
            yield choice, False
        if passed_over:
            opened = await self.breaker.opened_at([c.breaker_key for c in passed_over])
            yield min(passed_over, key=lambda c: opened.get(c.breaker_key) or 0.0), True

    # ---- the steps of a walk ------------------------------------------------------------
    def _cache_key(self, route: Route, walk: _Walk, cache_scope: str = "") -> str:
        return self.cache.key(
            scope=f"{route.scope}|{cache_scope}" if cache_scope else route.scope,
            messages=walk.messages,
            temperature=walk.temperature,
            max_tokens=walk.max_tokens,
            tools=walk.tools,
            reasoning=walk.reasoning,
        )

    async def _cached(self, key: str) -> list[Event] | None:
        """A stored answer replayed as a stream (a few text pieces), or None on a miss."""
        t0 = time.monotonic()
        hit = await self.cache.get(key)
        if hit is None:
            return None
        ms = int((time.monotonic() - t0) * 1000)
        events: list[Event] = [AttemptStarted(hit.provider, hit.model, 0, cache_hit=True, usage=hit.usage)]
        events += [ReasoningDelta(hit.reasoning)] if hit.reasoning else []
        events += [TextDelta(piece) for piece in hit.pieces()]
        events.append(AttemptFinished(hit.provider, hit.model, hit.usage, ms, ms, cache_hit=True))
        events.append(Finish(hit.finish_reason))
        return events

    def _provider(self, choice: ModelChoice, walk: _Walk) -> Provider | None:
        """The choice's provider; a misconfigured one is one more unavailable provider."""
        try:
            return get_provider(choice.config)
        except Exception as exc:
            log.exception("router: cannot build the %s provider", choice.provider)
            walk.last_err, walk.last_provider = (
                ProviderError(str(exc), provider=choice.provider),
                choice.provider,
            )
            walk.all_rejected = False
            return None

    def _attempt_request(
        self, choice: ModelChoice, provider: Provider, walk: _Walk
    ) -> tuple[ProviderRequest, Literal["continue", "restart"], bool]:
        """What the next attempt asks: the conversation, or — after content reached the client and
        the last attempt failed — the conversation plus the partial answer to *continue* (each adapter
        knows how its wire continues one), or a *restart* when tool calls were involved or nothing
        but whitespace came. Also whether the attempt's first text must lose its leading space."""
        walk.attempt_no += 1
        mode: Literal["continue", "restart"] = "continue"
        messages = walk.messages
        lstrip_next = False
        if walk.switch_from is not None or walk.resuming:
            partial = "".join(walk.text_parts)
            if walk.tool_calls or not partial.strip():
                mode = "restart"
                walk.text_parts.clear()
                walk.reasoning_parts.clear()
                walk.tool_calls = False
            else:
                messages = provider.continuation_messages(walk.messages, partial)
                # The continuation brings its own leading space; the client already has one.
                lstrip_next = partial[-1].isspace()
        request = ProviderRequest(
            model=choice.model,
            messages=messages,
            temperature=walk.temperature,
            max_tokens=walk.max_tokens,
            tools=walk.tools,
            reasoning=walk.reasoning,
            trace_id=walk.trace_id,
        )
        return request, mode, lstrip_next

    async def _succeeded(self, attempt: _Attempt, walk: _Walk, finish: str, latency_ms: int) -> list[Event]:
        """The attempt finished: its usage row, the breaker told, a cacheable answer stored, the end."""
        choice = attempt.choice
        # Some servers (llama.cpp) send no usage: the counts are estimated, never 0.
        usage = _billed(attempt, walk, taken=True, learn=True)
        await self.breaker.record_success(choice.breaker_key)
        if walk.cache_key is not None and finish == "stop" and not walk.tool_calls and walk.text_parts:
            answer = CachedAnswer(
                "".join(walk.text_parts),
                "".join(walk.reasoning_parts),
                choice.provider,
                choice.model,
                usage,
                chunks=tuple(walk.text_parts),
            )
            await self.cache.put(walk.cache_key, answer)
        return [
            AttemptFinished(choice.provider, choice.model, usage, latency_ms, attempt.ttft_ms),
            Finish(finish),
        ]

    async def _failed(
        self, attempt: _Attempt, walk: _Walk, err: ProviderError, latency_ms: int, had_content: bool
    ) -> AttemptFinished:
        """The attempt failed: the breaker told, the walk remembers why; its usage row (nothing when
        the vendor never took the request; else what it reported, and estimates for the rest)."""
        choice = attempt.choice
        usage = _billed(attempt, walk, learn=True)
        await self.breaker.record_failure(choice.breaker_key, err)
        log.info(
            "router: attempt %d on %s/%s failed (%s %s)%s",
            walk.attempt_no,
            choice.provider,
            choice.model,
            err.status,
            err.message,
            " after content" if had_content else "",
        )
        walk.last_err, walk.last_provider = err, choice.provider
        walk.all_rejected = walk.all_rejected and err.caused_by_request
        if had_content:
            walk.switch_from, walk.switch_reason = choice.provider, err.message
        return AttemptFinished(
            choice.provider,
            choice.model,
            usage,
            latency_ms,
            attempt.ttft_ms,
            error=err.message or repr(err),
            status=err.status,
        )

    def _retry_delay(self, policy: RetryPolicy, err: ProviderError, t: int, tries: int) -> float | None:
        """Seconds to wait before retrying this provider, or None to move on to the next one."""
        if not err.retryable or t + 1 >= tries:
            return None
        delay = err.retry_after if err.retry_after is not None else self.backoff(policy, t)
        if delay > policy.retry_after_cap_s:
            return None  # waiting that long is worse than the next provider
        return delay

    @staticmethod
    def _gave_up(walk: _Walk) -> StreamError:
        """The terminal error: every choice failed (or rejected the request itself)."""
        last_err = walk.last_err
        if last_err is not None and walk.all_rejected:
            return StreamError(
                f"The request was rejected: {last_err.message}",
                retryable=False,
                provider=walk.last_provider,
                status=last_err.status,
            )
        return StreamError(
            INTERRUPTED if walk.client_saw_content else UNAVAILABLE,
            retryable=True,
            provider=walk.last_provider or None,
            status=last_err.status if last_err else None,
        )


@dataclass(slots=True)
class _Walk:
    """One stream's way along its route: what it asks, and what the client has seen so far."""

    messages: tuple[ChatMessage, ...]
    temperature: float
    max_tokens: int
    tools: tuple[dict[str, Any], ...]
    reasoning: bool
    trace_id: str
    cache_key: str | None = None
    text_parts: list[str] = field(default_factory=list)  # the answer as the client has it (since a restart)
    reasoning_parts: list[str] = field(default_factory=list)
    tool_calls: bool = False
    client_saw_content: bool = False
    resuming: bool = False  # text_parts starts with an earlier answer's text, to be continued
    switch_from: str | None = None  # content flowed, then the attempt failed: tell the client
    switch_reason: str = ""
    attempt_no: int = 0
    last_err: ProviderError | None = None
    last_provider: str = ""
    all_rejected: bool = True


_default: dict[str, Router] = {}


# A cache hit is replayed as it streamed: its pieces at most this far apart, the whole under a second.
REPLAY_GAP_S = 0.010
REPLAY_MAX_S = 0.9


async def _replay(events: list[Event]) -> AsyncGenerator[Event, None]:
    """A stored answer's events, its text paced like a live stream (so every client renders it as
    one), however many pieces it has: neighbours are merged to stay within REPLAY_MAX_S."""
    texts = sum(1 for e in events if type(e) is TextDelta)
    group = max(1, math.ceil(texts * REPLAY_GAP_S / REPLAY_MAX_S))
    pending: list[str] = []
    sent = 0
    started = time.monotonic()
    for event in events:
        if type(event) is not TextDelta:
            if pending:
                yield TextDelta("".join(pending))
                pending = []
            if type(event) is AttemptFinished:
                # What the person waited for: the lookup and the replay, not the lookup alone.
                replayed_ms = int((time.monotonic() - started) * 1000)
                event = replace(event, latency_ms=event.latency_ms + replayed_ms)
            yield event
            continue
        pending.append(event.text)
        if len(pending) >= group:
            if sent:
                await asyncio.sleep(REPLAY_GAP_S)
            yield TextDelta("".join(pending))
            pending = []
            sent += 1


def _billed(attempt: _Attempt, walk: _Walk, *, taken: bool = False, learn: bool = False) -> Usage:
    """The attempt's usage as the vendor bills it: nothing when the vendor never took the request
    (no ``Usage`` from the adapter, no content, and not ``taken``: it finished); otherwise each count
    the vendor reported as it said, each one it did not estimated (``providers.estimates``) — the
    input from the prompt that was sent (never 0), the output from the text, thinking and tool calls
    that came (at least what the vendor reported so far). ``learn`` (once, when the attempt is over):
    the counts the vendor reported teach the estimates their ratio."""
    reported = attempt.usage
    if reported is None:
        if not taken and attempt.ttft_ms is None:
            return _NO_USAGE
        reported = ACCEPTED  # it finished, or content came: the vendor took it (an adapter that did not say)
    provider, model = attempt.choice.provider, attempt.choice.model
    text = sum(map(len, walk.text_parts[attempt.text_from :])) + attempt.tool_chars
    thinking = sum(map(len, walk.reasoning_parts[attempt.reasoning_from :]))
    usage = reported
    if reported.input_estimated or learn:
        prompt = estimates.prompt_chars(attempt.request)
        if reported.input_estimated:
            tokens = max(1, estimates.estimate(provider, model, "in", prompt))
            cached = reported.cached_input_tokens or estimates.estimate_cached(
                provider, model, attempt.request, tokens
            )
            usage = replace(usage, input_tokens=tokens, cached_input_tokens=cached)
        else:
            estimates.observe(provider, model, "in", prompt, reported.input_tokens)
        if learn:  # the vendor has this prompt cached now, for whoever sends it next
            estimates.observe_prompt(provider, model, attempt.request, usage.input_tokens)
    if reported.output_estimated:
        thought = estimates.estimate(provider, model, "out", thinking)
        seen = estimates.estimate(provider, model, "out", text) + thought
        usage = replace(
            usage,
            output_tokens=max(reported.output_tokens, seen),
            reasoning_tokens=max(reported.reasoning_tokens, thought),
        )
    elif learn:
        estimates.observe(provider, model, "out", text + thinking, reported.output_tokens)
    return usage


def get_router() -> Router:
    """The process-wide router (its breaker, cache and provider clients are shared)."""
    router = _default.get("r")
    if router is None:
        router = _default["r"] = Router()
    return router


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("REDIS_URL", "CHIMERA_CATALOG"):
        _default.clear()


setting_changed.connect(_on_setting_changed, dispatch_uid="providers.router")


def reset_for_tests() -> None:
    """Forget the process-wide router and breaker (their in-process state) between tests."""
    from providers.breaker import reset_default_breaker

    _default.clear()
    reset_default_breaker()
    estimates.reset()
