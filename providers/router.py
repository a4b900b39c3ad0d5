"""The router: one turn's stream across providers, with retries, failover and the cache.

``Router.stream`` walks the tier's route (``factory.ModelFactory.plan``). For each choice it
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
the adapters' ``Usage`` events on.

Closing the stream (``aclose()``, or cancelling the task iterating it) closes the
adapter's stream and so the upstream HTTP response.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.signals import setting_changed

from providers.base import ChatMessage, ProviderError, ProviderRequest, Wire
from providers.breaker import Breaker, get_breaker
from providers.cache import CachedAnswer, ResponseCache
from providers.catalog import RetryPolicy, get_catalog
from providers.events import (
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
from providers.factory import ModelFactory, current_flags, get_provider

log = logging.getLogger(__name__)

CONTINUE_INSTRUCTION = (
    "Your previous reply was cut off. Continue it exactly from where it stopped, "
    "without repeating anything and without any preamble."
)
UNAVAILABLE = "All providers are unavailable right now. Your message is saved; try again."
INTERRUPTED = "The answer was interrupted and no provider could finish it. What arrived is saved; try again."
NO_PROVIDER = (
    "No AI provider is enabled for this model tier right now. Your message is saved; try again later."
)
INTERNAL = "Something went wrong while generating the answer. Your message is saved; try again."

_NO_USAGE = Usage()


def continuation_messages(
    messages: tuple[ChatMessage, ...], partial: str, wire: Wire
) -> tuple[ChatMessage, ...]:
    """The conversation for an attempt that continues ``partial``.

    Anthropic continues a trailing assistant message natively (prefill; it rejects trailing
    whitespace there). OpenAI-compatible servers and Gemini treat it as a finished turn, so
    they also get a short user instruction to carry on.
    """
    if wire == "anthropic":
        return (*messages, ChatMessage("assistant", partial.rstrip()))
    return (*messages, ChatMessage("assistant", partial), ChatMessage("user", CONTINUE_INSTRUCTION))


@dataclass(slots=True)
class Completion:
    """A whole answer (``Router.complete``), for callers that do not stream (titles)."""

    text: str = ""
    finish_reason: str | None = None
    error: StreamError | None = None
    attempts: list[AttemptFinished] = field(default_factory=list)


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
        temperature: float = 0.7,
        max_tokens: int = 1000,
        tools: Sequence[dict[str, Any]] = (),
        reasoning: bool = False,
        trace_id: str = "",
        flags: Mapping[str, Any] | None = None,
        use_cache: bool = True,
    ) -> AsyncIterator[Event]:
        """Yield the turn's events; ends with exactly one ``Finish`` or one ``StreamError``.

        ``flags`` defaults to the current runtime flags. ``use_cache=False`` skips the cache
        lookup (regenerate) but still stores a cacheable answer.
        """
        messages = tuple(messages)
        tools = tuple(tools)
        try:
            if flags is None:
                flags = await current_flags()
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

        cache_key = None
        if flags.get("enableCaching", True):
            cache_key = self.cache.key(
                scope=route.scope,
                messages=messages,
                temperature=temperature,
                max_tokens=max_tokens,
                tools=tools,
                reasoning=reasoning,
            )
            if use_cache:
                t0 = time.monotonic()
                hit = await self.cache.get(cache_key)
                if hit is not None:
                    ms = int((time.monotonic() - t0) * 1000)
                    if hit.reasoning:
                        yield ReasoningDelta(hit.reasoning)
                    for piece in hit.chunks():
                        yield TextDelta(piece)
                    yield AttemptFinished(hit.provider, hit.model, hit.usage, ms, ms, cache_hit=True)
                    yield Finish(hit.finish_reason)
                    return

        # The walk stays in this one generator on purpose: per chunk it costs a few identity checks,
        # an append and a yield, with no extra generator layer in between.
        breaker = self.breaker
        policy = self.retry_policy()
        mono = time.monotonic
        text_parts: list[str] = []  # the answer as the client has it (since the last restart)
        reasoning_parts: list[str] = []
        tool_calls = False
        client_saw_content = False
        switch_from: str | None = None  # content flowed, then the attempt failed: tell the client
        switch_reason = ""
        attempt_no = 0
        last_err: ProviderError | None = None
        last_provider = ""
        all_rejected = True
        all_open = route.all_open

        for choice in route.choices:
            key = choice.breaker_key
            if not all_open and route.states.get(key, "closed") != "closed" and not await breaker.allow(key):
                continue
            try:
                provider = get_provider(choice.config)
            except Exception as exc:  # a misconfigured provider is one more unavailable provider
                log.exception("router: cannot build the %s provider", choice.provider)
                last_err, last_provider = ProviderError(str(exc), provider=choice.provider), choice.provider
                all_rejected = False
                continue
            tries = choice.config.max_retries + 1
            for t in range(tries):
                attempt_no += 1
                mode = "continue"
                request_messages = messages
                lstrip_next = False
                if switch_from is not None:
                    partial = "".join(text_parts)
                    if tool_calls or not partial.strip():
                        mode = "restart"
                        text_parts.clear()
                        reasoning_parts.clear()
                        tool_calls = False
                    else:
                        request_messages = continuation_messages(messages, partial, choice.config.wire)
                        # The continuation brings its own leading space; the client already has one.
                        lstrip_next = partial[-1].isspace()
                request = ProviderRequest(
                    model=choice.model,
                    messages=request_messages,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    tools=tools,
                    reasoning=reasoning,
                    trace_id=trace_id,
                )
                yield AttemptStarted(choice.provider, choice.model, attempt_no)
                started = mono()
                ttft_ms: int | None = None
                usage: Usage | None = None
                finish: str | None = None
                err: ProviderError | None = None
                first = True
                attempt_text_from = len(text_parts)
                upstream = provider.stream(request)
                try:
                    async for ev in upstream:
                        tp = type(ev)
                        if tp is Usage:
                            usage = ev  # type: ignore[assignment]
                            continue
                        if tp is Finish:
                            finish = ev.reason  # type: ignore[union-attr]
                            continue
                        if first:
                            if tp is TextDelta and not ev.text:  # type: ignore[union-attr]
                                continue
                            # The gate opens: this attempt's first real content.
                            first = False
                            ttft_ms = int((mono() - started) * 1000)
                            client_saw_content = True
                            if switch_from is not None:
                                yield ProviderSwitched(
                                    switch_from,
                                    choice.provider,
                                    choice.model,
                                    mode,
                                    switch_reason,  # type: ignore[arg-type]
                                )
                                switch_from = None
                        if tp is TextDelta:
                            if lstrip_next:
                                text = ev.text.lstrip()  # type: ignore[union-attr]
                                if not text:
                                    continue
                                lstrip_next = False
                                ev = TextDelta(text)
                            text_parts.append(ev.text)  # type: ignore[union-attr]
                        elif tp is ReasoningDelta:
                            reasoning_parts.append(ev.text)  # type: ignore[union-attr]
                        elif tp is ToolCall or tp is ToolInputDelta:
                            tool_calls = True
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
                    await upstream.aclose()  # type: ignore[attr-defined]
                if err is None and finish is None:
                    err = ProviderError("the stream ended without a finish", provider=choice.provider)
                latency_ms = int((mono() - started) * 1000)

                if err is None:
                    if usage is None:  # some servers (llama.cpp) send no usage: estimate, never count 0
                        usage = _estimated_usage(request, "".join(text_parts[attempt_text_from:]))
                    await breaker.record_success(key)
                    yield AttemptFinished(
                        choice.provider, choice.model, usage or _NO_USAGE, latency_ms, ttft_ms
                    )
                    if cache_key is not None and finish == "stop" and not tool_calls and text_parts:
                        answer = CachedAnswer(
                            "".join(text_parts),
                            "".join(reasoning_parts),
                            choice.provider,
                            choice.model,
                            usage or _NO_USAGE,
                        )
                        await self.cache.put(cache_key, answer)
                    yield Finish(finish)  # type: ignore[arg-type]
                    return

                if usage is None and not first:
                    # A cut stream carries no usage, yet the provider bills what it generated.
                    usage = _estimated_usage(request, "".join(text_parts[attempt_text_from:]))
                yield AttemptFinished(
                    choice.provider,
                    choice.model,
                    usage or _NO_USAGE,
                    latency_ms,
                    ttft_ms,
                    error=err.message or repr(err),
                    status=err.status,
                )
                await breaker.record_failure(key, err)
                log.info(
                    "router: attempt %d on %s/%s failed (%s %s)%s",
                    attempt_no,
                    choice.provider,
                    choice.model,
                    err.status,
                    err.message,
                    " after content" if not first else "",
                )
                last_err, last_provider = err, choice.provider
                all_rejected = all_rejected and err.caused_by_request
                if not first:
                    switch_from, switch_reason = choice.provider, err.message
                if not err.retryable or t + 1 >= tries:
                    break
                delay = err.retry_after if err.retry_after is not None else self.backoff(policy, t)
                if delay > policy.retry_after_cap_s:
                    break  # waiting that long is worse than the next provider
                if not all_open and not await breaker.allow(key):
                    break  # the breaker opened meanwhile (our failures or other streams'): move on
                await self._sleep(delay)

        if last_err is not None and all_rejected:
            yield StreamError(
                f"The request was rejected: {last_err.message}",
                retryable=False,
                provider=last_provider,
                status=last_err.status,
            )
        else:
            yield StreamError(
                INTERRUPTED if client_saw_content else UNAVAILABLE,
                retryable=True,
                provider=last_provider or None,
                status=last_err.status if last_err else None,
            )

    async def complete(self, **kwargs: Any) -> Completion:
        """``stream(**kwargs)`` gathered into one ``Completion`` (text after any restart)."""
        out = Completion()
        parts: list[str] = []
        async for ev in self.stream(**kwargs):
            if type(ev) is TextDelta:
                parts.append(ev.text)
            elif type(ev) is ProviderSwitched and ev.mode == "restart":
                parts.clear()
            elif type(ev) is AttemptFinished:
                out.attempts.append(ev)
            elif type(ev) is Finish:
                out.finish_reason = ev.reason
            elif type(ev) is StreamError:
                out.error = ev
        out.text = "".join(parts)
        return out


_default: dict[str, Router] = {}


def _estimated_usage(request: ProviderRequest, text: str) -> Usage:
    """About four characters a token: close enough to price a cut attempt to the cent."""
    prompt_chars = sum(len(m.content) for m in request.messages)
    return Usage(input_tokens=max(1, prompt_chars // 4), output_tokens=max(1, len(text) // 4))


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
