"""The skeleton every adapter shares: deadlines, Retry-After, error mapping, tool arguments, SDK set-up.

Nothing vendor-specific lives here: an adapter says how its SDK reports failures (``SdkErrors``)
and ``map_error`` does the rest, so every wire maps errors the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2

from providers.base import ProviderConfig, ProviderError
from providers.events import Event, ReasoningDelta, TextDelta

T = TypeVar("T")

HEALTH_TIMEOUT_S = 5.0
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})


def is_retryable_status(status: int | None) -> bool:
    return status is None or status in RETRYABLE_STATUSES or status >= 500


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date)."""
    if not headers:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def missing_key_error(config: ProviderConfig) -> ProviderError:
    return ProviderError(
        f"no API key configured for {config.name}", provider=config.name, status=401, retryable=False
    )


class Deadline:
    """The first-token and total deadlines of one attempt.

    Only the awaits on the SDK are bounded, never the consumer's time between
    events: a timeout must not cancel code outside the adapter.

    One timer per deadline (the first-token one, then the total one), not one per read: at up to
    hundreds of reads per answer, a fresh ``asyncio.timeout`` each time (a timer scheduled and
    cancelled, a context entered and left) was a visible share of the adapter's time. When the timer
    fires while an SDK await is running, the task is cancelled and that await raises the timeout
    (``uncancel`` tells our cancellation from anybody else's, as ``asyncio.timeout`` does); when it
    fires between awaits, the next await raises it at once. ``close`` drops the timer.
    """

    __slots__ = (
        "_armed",
        "_handle",
        "_loop",
        "_ours",
        "_task",
        "config",
        "first_at",
        "has_content",
        "total_at",
    )

    def __init__(self, config: ProviderConfig) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.config = config
        self.total_at = now + config.timeout_s
        self.first_at = min(now + config.first_token_timeout_s, self.total_at)
        self.has_content = False
        self._loop = loop
        self._task: asyncio.Task | None = None  # the task awaiting the SDK right now, if any
        self._handle: asyncio.TimerHandle | None = None
        self._armed: float | None = None
        self._ours = False  # the pending cancellation is the timer's

    def error(self) -> ProviderError:
        cfg = self.config
        if not self.has_content and self.first_at < self.total_at:
            message = f"first token timeout after {cfg.first_token_timeout_s:g}s"
        else:
            message = f"timeout after {cfg.timeout_s:g}s"
        return ProviderError(message, provider=cfg.name, status=None, retryable=True)

    def _fire(self) -> None:
        self._handle = None
        if self._task is not None:
            self._ours = True
            self._task.cancel()

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` within the current deadline; ProviderError when it passes."""
        when = self.total_at if self.has_content else self.first_at
        if self._loop.time() >= when:
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()  # never awaited: no "was never awaited" warning
            raise self.error()
        if self._armed != when:
            if self._handle is not None:
                self._handle.cancel()
            self._armed = when
            self._handle = self._loop.call_at(when, self._fire)
        task = self._task = asyncio.current_task()
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self._ours and task is not None:
                self._ours = False
                if task.uncancel() == 0:
                    raise self.error() from None
            raise
        finally:
            self._task = None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class SseEvents:
    """A Server-Sent Events body split into its events' data as the bytes arrive.

    ``feed`` takes one network read and returns the data of every event it completed (an event's
    ``data:`` lines joined; comment-only events and the ``event:`` names left out: every wire we
    read names its event inside the JSON too). Parsing the body here instead of in the vendor's SDK
    saves the SDK's per-chunk objects, the larger part of the CPU an answer costs on this path.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer + data if self._buffer else data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")  # Gemini ends its lines with CRLF
        out: list[bytes] = []
        start = 0
        while (end := buffer.find(b"\n\n", start)) >= 0:
            payload = sse_data(buffer[start:end])
            start = end + 2
            if payload is not None:
                out.append(payload)
        self._buffer = buffer[start:]
        return out

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished event are waiting (a body that ends here was cut mid-event)."""
        return bool(self._buffer.strip())


# After a wire's last event, how long the rest of the body (its chunked-encoding end) may take.
DRAIN_S = 1.0


async def drain(received: AsyncIterator[bytes]) -> None:
    """Read a body to its end after the wire's last event (``[DONE]``, ``message_stop``): a response
    closed before its end takes its connection with it, one read more puts the connection back in
    the pool for the next request. Failing here costs that connection only, never the answer."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(DRAIN_S):
            async for _ in received:
                pass


def sse_data(event: bytes) -> bytes | None:
    """The data of one SSE event (its ``data:`` lines joined), None for comments-only events."""
    if event.startswith(b"data: ") and b"\n" not in event:
        return event[6:]  # the usual case: one data line
    lines = [line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


class Deltas:
    """The thinking and text of one network read, handed on as one event each: one router step, one
    frame, one wake-up per subscriber instead of one per chunk (adapters that parse the SSE body).

    One kind is pending at a time, so the order holds: adding a piece of one kind returns the other
    kind's pending piece, to be handed on first. ``flush`` before any other event, before raising, and
    when a read is used up.
    """

    __slots__ = ("_kind", "_pieces")

    def __init__(self) -> None:
        self._kind: type[TextDelta] | type[ReasoningDelta] = TextDelta  # what ``_pieces`` are
        self._pieces: list[str] = []

    def text(self, piece: str) -> Event | None:
        return self._add(TextDelta, piece)

    def thought(self, piece: str) -> Event | None:
        return self._add(ReasoningDelta, piece)

    def flush(self) -> list[Event]:
        if not self._pieces:
            return []
        event = self._kind("".join(self._pieces))
        self._pieces.clear()
        return [event]

    def _add(self, kind: type[TextDelta] | type[ReasoningDelta], piece: str) -> Event | None:
        before: Event | None = None
        if kind is not self._kind:
            if self._pieces:
                before = self._kind("".join(self._pieces))
                self._pieces.clear()
            self._kind = kind
        self._pieces.append(piece)
        return before


# Upstream connections: enough for every open stream, and idle ones kept warm for 90 s rather than
# httpx's 5 s, so a conversation's next message (seconds to a minute later) skips the TCP and TLS
# handshakes, tens of milliseconds to a vendor. A connection the vendor closed meanwhile is seen
# when it is taken from the pool and replaced; a request that still fails to send is retried by
# the router like any connection error.
KEEPALIVE_S = 90.0
POOL_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100, keepalive_expiry=KEEPALIVE_S)


def sdk_client_options(config: ProviderConfig, http_client: type[httpx2.AsyncClient]) -> dict[str, Any]:
    """What the openai and anthropic SDK clients are built with: our retries only, our timeouts, and
    the SDK's own HTTP client class (``http_client``: it keeps the SDK's transport settings) with
    our pool."""
    return {
        "http_client": http_client(limits=POOL_LIMITS),
        "base_url": config.base_url,
        "api_key": config.api_key,
        "max_retries": 0,  # the router retries; the SDK's own retries would multiply them
        "timeout": httpx2.Timeout(config.timeout_s, connect=5.0),
        "default_headers": config.extra_headers or None,
    }


def tool_args(provider: str, name: str, raw: str) -> dict[str, Any]:
    """A tool call's JSON arguments as a dict; malformed JSON is a (retryable) provider error."""
    try:
        args = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise ProviderError(
            f"malformed arguments for tool call {name!r}", provider=provider, retryable=True
        ) from None
    return args if isinstance(args, dict) else {"value": args}


def status_error(
    provider: str, status: int | None, message: str, retry_after: float | None = None
) -> ProviderError:
    """An HTTP error status from a provider."""
    return ProviderError(
        message,
        provider=provider,
        status=status,
        retryable=is_retryable_status(status),
        retry_after=retry_after,
    )


@dataclass(frozen=True, slots=True)
class SdkErrors:
    """How one SDK reports failures.

    ``status`` maps the SDK's HTTP status errors (None: ``err`` is not one); ``streaming`` tells it
    whether content had started. ``timeouts``, ``connections`` (errors wrapping a cause), other
    ``api_errors`` (with a ``.message``) and ``malformed`` (a chunk that is not what we expect)
    are exception classes checked in that order.
    """

    status: Callable[[Exception, bool], ProviderError | None]
    timeouts: tuple[type[BaseException], ...] = ()
    connections: tuple[type[BaseException], ...] = ()
    api_errors: tuple[type[BaseException], ...] = ()
    malformed: tuple[type[BaseException], ...] = (ValueError,)


def map_error(err: Exception, provider: str, sdk: SdkErrors, *, streaming: bool = False) -> ProviderError:
    """Any failure of an attempt as a ``ProviderError`` (vendor exceptions never leave the adapter)."""
    if isinstance(err, ProviderError):
        return err
    mapped = sdk.status(err, streaming)
    if mapped is not None:
        return mapped
    if isinstance(err, (*sdk.timeouts, httpx2.TimeoutException)):
        return ProviderError("timeout talking to the provider", provider=provider, retryable=True)
    prefix = "stream cut" if streaming else "connection error"
    if isinstance(err, sdk.connections):
        return ProviderError(f"{prefix}: {err.__cause__ or err}", provider=provider, retryable=True)
    if isinstance(err, sdk.api_errors):
        return ProviderError(
            f"provider error: {getattr(err, 'message', err)}", provider=provider, retryable=True
        )
    if isinstance(err, sdk.malformed):
        return ProviderError(f"malformed chunk: {err}", provider=provider, retryable=True)
    if isinstance(err, httpx2.TransportError):
        return ProviderError(f"{prefix}: {err!r}", provider=provider, retryable=True)
    return ProviderError(f"{type(err).__name__}: {err}", provider=provider, retryable=True)
