"""The skeleton every adapter shares: deadlines, Retry-After, error mapping, tool arguments, SDK set-up.

Nothing vendor-specific lives here: an adapter says how its SDK reports failures (``SdkErrors``)
and ``map_error`` does the rest, so every wire maps errors the same way.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2

from providers.base import ProviderConfig, ProviderError

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
    """

    __slots__ = ("config", "first_at", "has_content", "total_at")

    def __init__(self, config: ProviderConfig) -> None:
        now = asyncio.get_running_loop().time()
        self.config = config
        self.total_at = now + config.timeout_s
        self.first_at = min(now + config.first_token_timeout_s, self.total_at)
        self.has_content = False

    def error(self) -> ProviderError:
        cfg = self.config
        if not self.has_content and self.first_at < self.total_at:
            message = f"first token timeout after {cfg.first_token_timeout_s:g}s"
        else:
            message = f"timeout after {cfg.timeout_s:g}s"
        return ProviderError(message, provider=cfg.name, status=None, retryable=True)

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` within the current deadline; ProviderError when it passes."""
        scope = asyncio.timeout_at(self.total_at if self.has_content else self.first_at)
        try:
            async with scope:
                return await awaitable
        except TimeoutError:
            if scope.expired():
                raise self.error() from None
            raise


def sdk_client_options(config: ProviderConfig) -> dict[str, Any]:
    """What the openai and anthropic SDK clients are built with: our retries only, our timeouts."""
    return {
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
