"""Helpers every adapter shares: deadlines, Retry-After, retryable statuses.

Nothing vendor-specific lives here; each adapter keeps its own ``_map_error``.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Mapping
from typing import TypeVar

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
