"""``analyzeVideo(url, question)``: Gemini's video understanding, asked about a YouTube video.

The call goes through the Gemini adapter (google-genai), so it gets the provider's timeouts and
error mapping, and it is billed like any other attempt: the tool returns it for a usage row.
Without a Google key there is nothing to ask: a clear tool error names the setting.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from providers.base import ChatMessage, ProviderError, ProviderRequest
from providers.catalog import provider_configs
from providers.events import AttemptFinished, TextDelta, Usage
from providers.factory import get_provider
from tools.base import Tool, ToolContext, ToolError, ToolResult

MODEL = "gemini-2.5-flash"
VIDEO_HOSTS = frozenset({"www.youtube.com", "youtube.com", "m.youtube.com", "youtu.be"})
NO_KEY = (
    "analyzeVideo needs a Google Gemini API key: set GOOGLE_API_KEY (or GEMINI_API_KEY) in the server's "
    "environment."
)


class AnalyzeVideoArgs(BaseModel):
    url: str = Field(
        max_length=2000,
        description="A YouTube video URL (https://www.youtube.com/watch?v=… or https://youtu.be/…).",
    )
    question: str = Field(min_length=1, max_length=2000, description="What to find out about the video.")

    @field_validator("url")
    @classmethod
    def _youtube(cls, url: str) -> str:
        parts = urlsplit(url.strip())
        if parts.scheme != "https" or (parts.hostname or "") not in VIDEO_HOSTS:
            raise ValueError("give an https YouTube URL (youtube.com or youtu.be)")
        return url.strip()

    @field_validator("question")
    @classmethod
    def _no_nul(cls, text: str) -> str:
        if "\x00" in text:
            raise ValueError("the question contains a NUL character")
        return text


class AnalyzeVideo(Tool):
    name = "analyzeVideo"
    description = (
        "Watch a YouTube video and answer a question about it (Gemini video understanding). "
        "Returns the answer as text."
    )
    Args = AnalyzeVideoArgs
    timeout_s = 90.0
    tiers = frozenset({"pro"})  # a video is many tokens: a paid plan's tool by default

    async def run(self, ctx: ToolContext, args: Any) -> ToolResult:
        config = provider_configs().get("google")
        if config is None or not config.api_key:
            raise ToolError(NO_KEY)
        request = ProviderRequest(
            model=MODEL,
            messages=(ChatMessage("user", args.question, media=(args.url,)),),
            temperature=0.2,
            max_tokens=1500,
            trace_id=ctx.trace_id,
        )
        started = time.monotonic()
        text: list[str] = []
        usage = Usage()
        first: int | None = None
        error: ProviderError | None = None
        try:
            async for event in get_provider(config).stream(request):
                if isinstance(event, TextDelta):
                    if first is None:
                        first = int((time.monotonic() - started) * 1000)
                    text.append(event.text)
                elif isinstance(event, Usage):
                    usage = event
        except ProviderError as exc:
            error = exc
        attempt = AttemptFinished(
            provider=config.name,
            model=MODEL,
            usage=usage,
            latency_ms=int((time.monotonic() - started) * 1000),
            ttft_ms=first,
            error=error.message if error else "",
            status=error.status if error else None,
        )
        if error is not None:
            raise ToolError(f"Gemini could not analyse the video: {error.message}", (attempt,))
        answer = "".join(text).strip()
        return ToolResult(output={"url": args.url, "answer": answer}, attempts=(attempt,))
