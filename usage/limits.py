"""Tiered rate limits on Django's cache (Redis when configured), through django-ratelimit.

Limits come from the runtime flags (``rateLimit.freeLimit`` / ``proLimit``,
messages per window), so staff can change them without a deploy.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage

GROUP = "chimera.turn"


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
    usage = get_usage(
        request,
        group=GROUP,
        key="user",
        rate=f"{limit}/{settings.CHIMERA_RATE_LIMIT_WINDOW_S}s",
        method="POST",
        increment=increment,
    )
    if usage and usage["should_limit"]:
        return max(1, int(usage["time_left"]))
    return 0
