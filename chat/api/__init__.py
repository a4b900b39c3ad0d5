"""The REST/SSE API (django-ninja), mounted at /api/. OpenAPI at /api/docs.

- ``chat``: POST /api/chat/v2 (AI SDK UI message stream, or blocking JSON) and its resume URL.
- ``conversations``: the conversation and message-tree API.
- ``keys``: API keys.
- ``usage``: the caller's own usage this month and what is left of their rate limits.

Auth on every operation: ``Authorization: Bearer <api key>`` or the session (+ CSRF token).
Errors: ``{"error": {"code", "message"[, "field"]}}`` (``chat.api.errors``).
"""

from __future__ import annotations

from ninja import NinjaAPI
from ninja.parser import Parser

from chat import text
from chat.api import errors
from chat.api.auth import api_key, session


class StorableTextParser(Parser):
    """ninja's JSON parser, refusing text no database can store (NUL, unpaired surrogates) with a
    422 that names the field, in bodies and in query strings."""

    def parse_body(self, request):
        data = super().parse_body(request)
        text.check(data)
        return data

    def parse_querydict(self, data, list_fields, request):
        result = super().parse_querydict(data, list_fields, request)
        text.check(result)
        return result


api = NinjaAPI(
    title="Chimera API",
    version="2",
    urls_namespace="api",
    auth=[api_key, session],
    parser=StorableTextParser(),
    description=(
        "Programs: `Authorization: Bearer <key>` (keys from /accounts/settings/ or "
        "`python manage.py create_api_key <username>`). The page: session cookie plus `X-CSRFToken`. "
        'Every error is `{"error": {"code": ..., "message": ...}}`.'
    ),
)
errors.install(api)

from chat.api.chat import router as chat_router  # noqa: E402
from chat.api.conversations import router as conversations_router  # noqa: E402
from chat.api.keys import router as keys_router  # noqa: E402
from chat.api.usage import router as usage_router  # noqa: E402

api.add_router("", chat_router)
api.add_router("/conversations", conversations_router)
api.add_router("/keys", keys_router)
api.add_router("/usage", usage_router)
