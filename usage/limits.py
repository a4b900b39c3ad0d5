"""Tiered rate limits on Django's cache (Redis when configured), through django-ratelimit.

Two windows per person, by plan: a burst window (``rateLimit.freeBurst`` / ``proBurst`` messages per
CHIMERA_RATE_LIMIT_BURST_S, a minute) and a quota (``rateLimit.freeLimit`` / ``proLimit`` per
CHIMERA_RATE_LIMIT_WINDOW_S, a day), from the runtime flags, so staff change them without a deploy.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Window:
    name: str  # "burst" | "quota"
    limit: int
    period_s: int


@dataclass(frozen=True, slots=True)
class Quota:
    """Where a person stands, in the window closest to its limit: the X-RateLimit-* headers."""

    limit: int
    remaining: int
    reset_s: int  # seconds until that window starts again


def limit_for(user, flags) -> tuple[Window, ...] | None:
    """The person's windows by plan (runtime flags ``rateLimit``), or None when limits are off."""
    rate = flags.get("rateLimit") or {}
    if not rate.get("enabled", True):
        return None
    pro = getattr(user, "tier", "free") == "pro"
    quota = rate.get("proLimit" if pro else "freeLimit") or (
        settings.CHIMERA_RATE_LIMIT_PRO if pro else settings.CHIMERA_RATE_LIMIT_FREE
    )
    burst = rate.get("proBurst" if pro else "freeBurst") or (
        settings.CHIMERA_RATE_LIMIT_BURST_PRO if pro else settings.CHIMERA_RATE_LIMIT_BURST_FREE
    )
    return (
        Window("burst", int(burst), settings.CHIMERA_RATE_LIMIT_BURST_S),
        Window("quota", int(quota), settings.CHIMERA_RATE_LIMIT_WINDOW_S),
    )


class CountersDown(Exception):
    """The counters' store (Redis) is unreachable, or answered without a count."""


def count(user, window: Window, *, increment: bool) -> dict:
    """The person's django-ratelimit counter for ``window`` (one message counted when ``increment``;
    read only otherwise): its ``count``, ``time_left`` and ``should_limit``. Raises CountersDown."""
    # django-ratelimit works on a request; the WebSocket has none, so give it the user.
    request = HttpRequest()
    request.method = "POST"
    request.user = user
    try:
        usage = get_usage(
            request,
            group=f"{GROUP}.{window.name}",
            key="user",
            rate=f"{window.limit}/{window.period_s}s",
            method="POST",
            increment=increment,
        )
    except Exception as exc:  # the counters' store (Redis) is unreachable
        raise CountersDown(str(exc)) from exc
    if not usage or (usage["limit"] == 0 and usage["time_left"] == -1):
        # django-ratelimit's answer when the cache took the call but no count came back.
        raise CountersDown("the cache returned no count")
    return usage


def check_sync(user, windows: tuple[Window, ...]) -> tuple[int, Quota | None]:
    """Counts one message in each window, the burst window first (a message it refuses does not
    use up the quota). Returns (0, where the person stands) when allowed, else (seconds until the
    refusing window resets, where they stand); the Quota is None while the counters are down.

    The counters are django-ratelimit's fixed windows on the shared cache (Redis), each counted with
    one atomic increment, so any number of processes admit exactly ``limit`` per window. At a
    window's edge up to twice a burst can pass within a short time; the quota bounds the day."""
    standing: list[Quota] = []
    for window in windows:
        try:
            usage = count(user, window, increment=True)
        except CountersDown as exc:
            return _unavailable(str(exc)), None
        reset = max(1, int(usage["time_left"]))
        quota = Quota(window.limit, max(0, window.limit - int(usage["count"])), reset)
        if usage["should_limit"]:
            return reset, quota
        standing.append(quota)
    return 0, min(standing, key=lambda q: (q.remaining, -q.reset_s)) if standing else None
