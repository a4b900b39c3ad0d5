"""Tiered rate limits on Django's cache (Redis when configured), through django-ratelimit.

Limits come from the runtime flags (``rateLimit.freeLimit`` / ``proLimit``,
messages per window), so staff can change them without a deploy.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage

GROUP = "chimera.turn"


class LimitsUnavailable(Exception):
    """The counters cannot be read and CHIMERA_RATE_LIMIT_WHEN_DOWN is "closed"."""


log = logging.getLogger(__name__)
_warned_at = [-60.0]


def _unavailable(why: str) -> int:
    """No count: let the message through ("open", the default) or refuse it ("closed")."""
    now = time.monotonic()
    if now - _warned_at[0] >= 60:
        _warned_at[0] = now
        log.warning(
            "rate limits: the counter store is unreachable (%s); failing %s",
            why,
            settings.CHIMERA_RATE_LIMIT_WHEN_DOWN,
        )
    if settings.CHIMERA_RATE_LIMIT_WHEN_DOWN == "closed":
        raise LimitsUnavailable(why)
    return 0


def limit_for(user, flags) -> int | None:
    rate = flags.get("rateLimit") or {}
    if not rate.get("enabled", True):
        return None
    if getattr(user, "tier", "free") == "pro":
        return int(rate.get("proLimit") or settings.CHIMERA_RATE_LIMIT_PRO)
    return int(rate.get("freeLimit") or settings.CHIMERA_RATE_LIMIT_FREE)


def check_sync(user, limit: int, increment: bool = True) -> int:
    """Counts one message; 0 when allowed, else the seconds until the window resets."""
    # django-ratelimit works on a request; the WebSocket has none, so give it the user.
    request = HttpRequest()
    request.method = "POST"
    request.user = user
    try:
        usage = get_usage(
            request,
            group=GROUP,
            key="user",
            rate=f"{limit}/{settings.CHIMERA_RATE_LIMIT_WINDOW_S}s",
            method="POST",
            increment=increment,
        )
    except Exception as exc:  # the counters' store (Redis) is unreachable
        return _unavailable(str(exc))
    if usage and usage["limit"] == 0 and usage["time_left"] == -1:
        # django-ratelimit's answer when the cache took the call but no count came back.
        return _unavailable("the cache returned no count")
    if usage and usage["should_limit"]:
        return max(1, int(usage["time_left"]))
    return 0
