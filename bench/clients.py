"""One streamed answer, four ways: straight to the upstream, through the page's WebSocket, through SSE,
and through the bare relay (bench/relay.py, the same SSE client).

Each returns a ``Sample``: when the request went out, when each piece of text arrived,
and the text itself, so the harness can compare times and check every token arrived once.
"""

from __future__ import annotations

import html
import json
import re
import time
from dataclasses import dataclass, field

import httpx2

now = time.perf_counter
TURN_TIMEOUT_S = 60.0


@dataclass(slots=True)
class Sample:
    side: str  # "direct" | "relay" | "ws" | "sse"
    prompt: int
    sent: float
    first: float | None = None
    done: float | None = None
    arrivals: list[float] = field(default_factory=list)  # one per received piece of text (a frame / chunk)
    pieces: list[str] = field(default_factory=list)
    error: str = ""
    whole: bool = False  # page only: the answer arrived whole at the end, nothing streamed
    replaced: int = 0  # page only: frames that replaced the text so far (a late subscription catching up)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def ttft_ms(self) -> float:
        return (self.first - self.sent) * 1000

    @property
    def total_ms(self) -> float:
        return (self.done - self.sent) * 1000

    def token_interval_ms(self, tokens: int) -> float:
        """Mean time between tokens after the first: (last arrival - first arrival) / (tokens - 1)."""
        return (self.arrivals[-1] - self.arrivals[0]) * 1000 / max(1, tokens - 1)

    def max_gap_ms(self) -> float:
        a = self.arrivals
        return max((a[i + 1] - a[i] for i in range(len(a) - 1)), default=0.0) * 1000


PROMPTS = [
    f"Explain {topic} briefly, with one practical example."
    for topic in (
        "photosynthesis",
        "compilers",
        "volcanoes",
        "bookkeeping",
        "gardening",
        "astronomy",
        "cryptography",
        "sourdough",
        "typography",
        "glaciers",
        "negotiation",
        "databases",
        "orchestras",
        "metallurgy",
        "beekeeping",
        "navigation",
    )
]


# ---- direct: the upstream's OpenAI-compatible endpoint ----------------------------------
async def direct(client: httpx2.AsyncClient, emulator_url: str, prompt: int) -> Sample:
    body = {
        "model": "llama-3.3-70b-versatile",
        "messages": [{"role": "user", "content": PROMPTS[prompt]}],
        "temperature": 0.7,
        "max_tokens": 1000,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    sample = Sample("direct", prompt, now())
    try:
        async with client.stream(
            "POST",
            emulator_url + "/groq/openai/v1/chat/completions",
            json=body,
            headers={"Authorization": "Bearer emulator"},
        ) as response:
            if response.status_code != 200:
                sample.error = f"HTTP {response.status_code}"
                return sample
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    sample.done = now()
                    break
                chunk = json.loads(data)
                for choice in chunk.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        t = now()
                        if sample.first is None:
                            sample.first = t
                        sample.arrivals.append(t)
                        sample.pieces.append(text)
    except Exception as exc:
        sample.error = f"{type(exc).__name__}: {exc}"
    if sample.done is None and not sample.error:
        sample.error = "stream ended without [DONE]"
    return sample


# ---- the page's WebSocket ----------------------------------------------------------------
_DELTA = re.compile(r'<span hx-swap-oob="beforeend:#mc-[0-9a-f-]+">(.*?)</span>', re.S)
_FINAL = re.compile(
    r'<div id="mc-[0-9a-f-]+" class="message-content" data-testid="message-content">(.*?)</div>', re.S
)
# Sent instead of deltas when the socket subscribed after text had arrived: everything so far, at once.
_REPLACE = re.compile(
    r'<div id="mc-[0-9a-f-]+" class="message-content streaming"[^>]*hx-swap-oob="outerHTML">(.*?)</div>', re.S
)


class PageSocket:
    """One browser tab: a logged-in WebSocket at /ws/chat/ that sends turns one after another."""

    def __init__(self, base_url: str, session: str) -> None:
        self.url = base_url.replace("http://", "ws://") + "/ws/chat/"
        self.origin = base_url
        self.session = session
        self.ws = None

    async def __aenter__(self) -> PageSocket:
        from websockets.asyncio.client import connect

        self.ws = await connect(
            self.url,
            additional_headers={"Origin": self.origin, "Cookie": f"sessionid={self.session}"},
            max_size=None,
            open_timeout=30,
            ping_interval=None,
        )
        return self

    async def __aexit__(self, *exc) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def turn(self, prompt: int) -> Sample:
        import asyncio

        ws = self.ws
        message = {
            "action": "send",
            "message": PROMPTS[prompt],
            "tier": "balanced",
            "conversation_id": "",
            "HEADERS": {"HX-Request": "true"},
        }
        sample = Sample("ws", prompt, now())
        try:
            await ws.send(json.dumps(message))
            async with asyncio.timeout(TURN_TIMEOUT_S):
                while True:
                    frame = await ws.recv()
                    t = now()
                    if "#mc-" in frame or 'hx-swap-oob="outerHTML">' in frame:
                        replaced = _REPLACE.findall(frame)
                        if replaced:
                            sample.pieces[:] = [html.unescape(replaced[-1])]
                            sample.replaced += 1
                        pieces = _DELTA.findall(frame)
                        if pieces:
                            sample.pieces.append(html.unescape("".join(pieces)))
                        if (replaced and replaced[-1]) or pieces:
                            if sample.first is None:
                                sample.first = t
                            sample.arrivals.append(t)
                    if 'data-state="idle"' in frame:
                        sample.done = t
                        if 'data-testid="message-complete"' not in frame:
                            sample.error = "the answer did not complete: " + _error_text(frame)
                        elif sample.first is None:
                            # The turn ended before the socket subscribed: the page gets the whole answer at
                            # once (rendered Markdown). Not an error, but nothing streamed: TTFT = total time.
                            final = _FINAL.search(frame)
                            if final:
                                sample.first = t
                                sample.arrivals.append(t)
                                sample.pieces[:] = [html.unescape(re.sub(r"<[^>]+>", "", final.group(1)))]
                                sample.whole = True
                        break
        except Exception as exc:
            sample.error = f"{type(exc).__name__}: {exc}"
        if sample.first is None and not sample.error:
            sample.error = "no token arrived"
        return sample


def _error_text(frame: str) -> str:
    return re.sub(r"<[^>]+>", " ", frame)[:200].strip()


# ---- the API: POST /api/chat/v2, AI SDK UI message stream over SSE ---------------------------
async def sse(
    client: httpx2.AsyncClient, base_url: str, api_key: str, prompt: int, side: str = "sse"
) -> Sample:
    """Chimera's API; with ``side="relay"`` the bare relay, which takes the same request and answers alike."""
    body = {"messages": [{"role": "user", "content": PROMPTS[prompt]}], "config": {"model": "balanced"}}
    sample = Sample(side, prompt, now())
    try:
        async with client.stream(
            "POST",
            base_url + "/api/chat/v2",
            json=body,
            headers={"Authorization": f"Bearer {api_key}"},
        ) as response:
            if response.status_code != 200:
                sample.error = f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
                return sample
            finished = False
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    sample.done = now()
                    break
                part = json.loads(data)
                kind = part.get("type")
                if kind == "text-delta":
                    t = now()
                    if sample.first is None:
                        sample.first = t
                    sample.arrivals.append(t)
                    sample.pieces.append(part.get("delta", ""))
                elif kind == "finish":
                    finished = True
                elif kind == "error":
                    sample.error = "error part: " + str(part.get("errorText"))[:200]
            if sample.done is None and not sample.error:
                sample.error = "stream ended without [DONE]"
            elif not finished and not sample.error:
                sample.error = "stream ended without a finish part"
    except Exception as exc:
        sample.error = f"{type(exc).__name__}: {exc}"
    if sample.first is None and not sample.error:
        sample.error = "no token arrived"
    return sample
