"""The bare relay: the floor Chimera is measured against (issue 14).

The smallest Django ASGI application that relays the upstream's stream with the ``openai``
SDK: one async view, no database, no auth, no middleware, no installed apps. It takes the
body the benchmark sends Chimera's API (``{"messages": [...], ...}``), asks the emulator's
OpenAI-compatible Groq endpoint with one module-level ``openai.AsyncOpenAI`` client built
with the options Chimera's adapter uses (``providers.adapters._common.sdk_client_options``:
no SDK retries, the same timeouts, the SDK's own httpx2 client), and streams the answer back
as AI SDK UI message stream parts (``start``, ``text-delta`` per chunk, ``finish``,
``[DONE]``), so the benchmark's client does the same parsing work as for Chimera's SSE.

It reads the chunks the ordinary SDK way (``stream=True``, one parsed chunk object per
event): the naive relay, as the issue defines the floor. Served by its own daphne process
(``python -m daphne bench.relay:application``), started by ``bench.services.Stack``;
``RELAY_UPSTREAM_URL`` is the emulator's OpenAI-compatible base URL.
"""

from __future__ import annotations

import json
import os

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-relay-" + "x" * 40,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    ROOT_URLCONF=__name__,
    DATABASES={},
    USE_TZ=True,
    LOGGING_CONFIG=None,
)
django.setup(set_prefix=False)

import httpx2  # noqa: E402
import openai  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

UPSTREAM_URL = os.environ.get("RELAY_UPSTREAM_URL", "http://127.0.0.1:8000/groq/openai/v1")
MODEL = "llama-3.3-70b-versatile"

# What Chimera's OpenAI-compatible adapter builds its client with (sdk_client_options): the
# provider's base URL and key, no SDK retries, a 60 s attempt timeout with a 5 s connect timeout.
client = openai.AsyncOpenAI(
    base_url=UPSTREAM_URL,
    api_key="emulator",
    max_retries=0,
    timeout=httpx2.Timeout(60.0, connect=5.0),
    default_headers=None,
)

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _part(obj: dict) -> bytes:
    return b"data: " + _dumps(obj).encode() + b"\n\n"


async def chat(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    if request.method != "POST":
        return HttpResponse(status=405)
    messages = json.loads(request.body)["messages"]
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=messages,
        temperature=0.7,
        max_tokens=1000,
        stream=True,
        stream_options={"include_usage": True},
    )

    async def body():
        try:
            yield _part({"type": "start", "messageId": "relay"}) + _part({"type": "start-step"})
            yield _part({"type": "text-start", "id": "text-1"})
            finish = "stop"
            async for chunk in stream:
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield _part({"type": "text-delta", "id": "text-1", "delta": choice.delta.content})
                    if choice.finish_reason:
                        finish = choice.finish_reason
            yield (
                _part({"type": "text-end", "id": "text-1"})
                + _part({"type": "finish-step"})
                + _part({"type": "finish", "finishReason": finish})
                + b"data: [DONE]\n\n"
            )
        finally:
            await stream.close()

    response = StreamingHttpResponse(body(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["x-vercel-ai-ui-message-stream"] = "v1"
    return response


async def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [path("api/chat/v2", chat), path("health", health)]

application = ASGIHandler()
