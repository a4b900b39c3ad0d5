"""Who is calling: a Bearer API key (programs) or the Django session with CSRF (the page).

A request that sends an Authorization header is judged by it alone: a wrong, malformed or
revoked key is a 401 even when a session cookie is present too. Session requests that
change something must carry the CSRF token (``X-CSRFToken``), else 403.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from accounts.apikeys import user_for_key
from chat import db
from chat.errors import TurnError

BAD_KEY = "That API key is not valid or has been revoked. Create one at /accounts/settings/."


class ApiKeyAuth(HttpBearer):
    """``Authorization: Bearer chk_…``; keys come from the settings page or ``create_api_key``."""

    async def __call__(self, request):
        header = request.headers.get("Authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise TurnError(
                "invalid_authorization", "Send the API key as 'Authorization: Bearer <key>'.", 401
            )
        return await self.authenticate(request, token)

    async def authenticate(self, request, token: str):
        # On the turn threads (chat.db), not a thread of this request's own: a program's request
        # then holds no database connection while its answer streams.
        return await db.run(ApiKeyToken(token).user)


class ApiKeyToken:
    """An API key as sent: ``user()`` looks it up (sync), its person or a 401. ``ApiKeyAuth`` does that
    in its hook; ``DeferredApiKeyAuth`` leaves it for the job that saves the message."""

    __slots__ = ("raw",)

    def __init__(self, raw: str) -> None:
        self.raw = raw

    def user(self):
        user = user_for_key(self.raw)
        if user is None:
            raise TurnError("invalid_api_key", BAD_KEY, 401)
        return user


class DeferredApiKeyAuth(ApiKeyAuth):
    """A Bearer key for the chat endpoint, looked up later, in the database job that saves the
    user's message: one hop to the database threads before the provider is called, not two.

    Until then the request is not known to be anybody's, so nothing that reads or writes rows may
    happen before ``caller(request.auth)``. Departure: django-ninja validates the body between its
    auth hook and the view, so a request with both a bad key and a bad body hears about its body
    (422) where other endpoints answer 401 first; the body's rules are public (the OpenAPI schema),
    and nothing is read or stored for it.
    """

    async def authenticate(self, request, token: str):
        return ApiKeyToken(token)


def caller(auth):
    """The user behind ``request.auth`` (sync: a deferred key is looked up here)."""
    return auth.user() if isinstance(auth, ApiKeyToken) else auth


class SessionCsrfAuth(APIKeyCookie):
    """The signed-in person's session; unsafe methods must pass Django's CSRF check.

    The session is read on the turn threads too (``chat.db``), like an API key: no request then
    holds a database connection of its own while its answer streams.
    """

    param_name = settings.SESSION_COOKIE_NAME

    async def __call__(self, request):
        if "Authorization" in request.headers or not request.COOKIES.get(self.param_name):
            return None
        return await self.authenticate(request, request.COOKIES[self.param_name])

    async def authenticate(self, request, key):
        user = await db.run(get_user, request)
        if not user.is_authenticated:
            return None
        request.user = user  # read once: later uses must not read the session again
        if check_csrf(request) is not None:
            raise TurnError(
                "csrf_failed",
                "CSRF check failed: send the csrftoken cookie's value in an X-CSRFToken header.",
                403,
            )
        return user


api_key = ApiKeyAuth()
deferred_api_key = DeferredApiKeyAuth()
session = SessionCsrfAuth()
