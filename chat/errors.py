"""Errors a person can act on: each carries an HTTP-like status, a code, and a message in plain words.

Transports render them their own way (the page: an error fragment; the API: ``{"error": ...}``
JSON with the status). Nothing here is a 500: those are bugs, logged and answered generically.
"""

from __future__ import annotations

from django.http import Http404


class TurnError(Exception):
    """A request that cannot be served as asked (bad input, not found, over a limit)."""

    def __init__(self, code: str, message: str, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.field = field


class NotFound(TurnError, Http404):
    """Someone else's object, a missing one, or an id that is not one: all look the same (404).

    Also an ``Http404``, so a page view that lets it through answers Django's 404.
    """

    def __init__(self, message: str = "That conversation does not exist.", field: str | None = None) -> None:
        super().__init__("not_found", message, 404, field)


class RateLimited(TurnError):
    def __init__(self, retry_after: int, quota=None) -> None:
        super().__init__(
            "rate_limited",
            f"You have sent too many messages. Please try again in {retry_after} seconds.",
            429,
        )
        self.retry_after = retry_after
        self.quota = quota  # usage.limits.Quota: the window that refused it (X-RateLimit-* headers)
