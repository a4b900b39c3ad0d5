"""Throttling of the doors people guess passwords at: login, signup and the admin's login.

Each POST counts against the client's address and, for logins, against the username tried, in
Django's cache (Redis when configured) through django-ratelimit's counters. Over the limit: a 429
page that says when to try again, with Retry-After. While the cache is unreachable the doors stay
open (a warning is logged): people must be able to sign in during a Redis outage.
"""

from __future__ import annotations

import functools
import logging
import time

from django.conf import settings
from django.shortcuts import render
from django_ratelimit.core import get_usage

log = logging.getLogger(__name__)
_warned_at = [-60.0]


def _over(request, group: str, key: str, rate: str) -> int:
    """Seconds until the window resets when this POST is over ``rate``, else 0."""
    try:
        usage = get_usage(request, group=group, key=key, rate=rate, method="POST", increment=True)
    except Exception as exc:
        usage = None
        if time.monotonic() - _warned_at[0] >= 60:
            _warned_at[0] = time.monotonic()
            log.warning("throttle: the cache is unreachable (%s); not throttling", exc)
    if not usage or not usage["should_limit"] or usage["time_left"] < 0:
        return 0  # allowed, or no count (the cache is down): open
    return max(1, int(usage["time_left"]))


def throttled(group: str, *, per_username: bool = False):
    """Limit POSTs to a view: CHIMERA_LOGIN_RATE per address (and per username tried)."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method == "POST":
                rate = settings.CHIMERA_LOGIN_RATE
                wait = _over(request, f"chimera.{group}.ip", "ip", rate)
                if per_username and request.POST.get("username"):
                    wait = max(wait, _over(request, f"chimera.{group}.user", "post:username", rate))
                if wait:
                    response = render(request, "registration/throttled.html", {"wait": wait}, status=429)
                    response["Retry-After"] = str(wait)
                    return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
