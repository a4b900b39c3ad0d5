"""An LLM provider emulator that speaks the real wire formats, with fault injection.

Run it with ``python -m providers.emulator --host 127.0.0.1 --port 8765`` and point
the real SDKs at it. The first path segment names the provider, so one emulator
serves them all:

==========================  ====================================  =========================
provider                    base URL for the SDK                  wire format
==========================  ====================================  =========================
groq                        ``{E}/groq/openai/v1``                OpenAI chat completions
Vercel AI Gateway           ``{E}/gateway/v1``                    OpenAI chat completions
local model                 ``{E}/local/v1``                      OpenAI chat completions
any OpenAI-compatible name  ``{E}/<name>/v1``                     OpenAI chat completions
Google Gemini               ``{E}/gemini`` (api_version v1beta)   streamGenerateContent SSE
Anthropic                   ``{E}/anthropic``                     Messages SSE
==========================  ====================================  =========================

Endpoints per wire format (``P`` is the provider segment):

- ``POST /P/.../chat/completions`` (stream or not; usage chunk when
  ``stream_options.include_usage``), ``GET /P/.../models``.
- ``POST /P/v1beta/models/{model}:streamGenerateContent?alt=sse`` and
  ``:generateContent``, ``GET /P/v1beta/models``.
- ``POST /P/v1/messages`` (stream or not), ``GET /P/v1/models``.

Answers are deterministic for a conversation: 40-80 word-ish tokens about the
last user message's topic, or a continuation when the last message is the
assistant's (a prefill) or the user asks to continue. Reasoning models (OpenAI
wire: model id contains "reason", "r1", "gpt-oss" or "qwq"; Gemini: "pro" or
"thinking" with ``includeThoughts``; Anthropic: ``thinking`` enabled) stream their
thinking first.

Tools (when the request offers them): a user message containing ``[[tool:NAME {json arguments}]]``
makes the model call NAME with those arguments (``[[tool:NAME]]``: no arguments); with several
such directives it calls them one per step, in order. Once every directive has its result (the
conversation ends with tool results), it answers with text that quotes them:
``Tool results: <result> | <result>.`` Without a directive, a tool whose name appears in the last
user message is called with ``{"query": <topic>}``. A Gemini request carrying a file (``fileData``,
e.g. a YouTube URL) is answered "Watching <uri>: ..." .
Usage is counted from the text (input ~ words x 1.3, output = tokens sent); a
prompt (or prompt prefix) seen in the last 5 minutes reports cached input tokens.
A request without an API key gets a 401 in the wire's own error shape.

Control API (state lives in process memory: one emulator per test session)
-------------------------------------------------------------------------

``POST /_control/faults`` adds a fault::

    {"provider": "groq",          # first path segment ("gemini" for Google; "google" is accepted;
                                  # "*" matches any provider)
     "kind": "status",            # "status" | "stall" | "cut" | "malformed" | "error"
     "status": 503,               # kind=status: the HTTP status (default 503), with the wire's error body
     "retry_after": 2,            # kind=status: adds a Retry-After header (seconds)
     "after_tokens": 20,          # stall/cut/malformed/error: content tokens sent first (default 0)
     "stall_ms": 30000,           # stall: how long nothing is sent (default 30 s); then the stream resumes
     "abort": false,              # cut: true drops the connection mid-body instead of ending it cleanly
     "mid_event": false,          # cut: true sends the first half of the next event before the cut
     "times": 3,                  # how many requests it hits; absent: until cleared
     "skip": 1}                   # requests let through untouched first (e.g. a tool loop's step 1)

Faults apply to generation requests only (not model lists), are matched by
provider and consumed in the order they were added. ``cut`` ends the stream
without the wire's end marker (no finish chunk / ``[DONE]`` / ``message_stop``);
``malformed`` sends one chunk that is not valid JSON, then ends; ``error`` sends the wire's error
event inside the 200 stream (Anthropic ``event: error`` with an ``overloaded_error``; OpenAI and Gemini
a ``data: {"error": ...}`` chunk), then ends.

- ``DELETE /_control/faults``: clear all faults and runtime timing overrides.
- ``GET /_control/faults``: the active faults.
- ``POST /_control/timing`` ``{"provider": "*"|name, "ttft_ms": .., "chunk_ms": .., "chunks": ..}``:
  change timing at runtime (``chunks`` fixes the number of content tokens; ``chunk_ms`` 0 sends all
  but the first token in one write, with a fault's own bytes when one applies; a stall keeps the pace).
- ``GET /_control/requests``: the request log, newest last (method, path, provider,
  model, headers with credentials redacted, JSON body, outcome: status, fault,
  tokens_sent, finished, and ``billed``: what this vendor bills for the request —
  nothing for an error status; otherwise the prompt's input tokens and every output
  token it sent, also when the stream was cut, stalled or left by the client);
  ``DELETE /_control/requests`` clears it.
- ``GET /_control/health``: ``{"ok": true}``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import asdict, dataclass, replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from providers.emulator.answers import (
    compose,
    conversation_key,
    count_tokens,
    next_tool_call,
    quote_tool_results,
    tokenize,
    wants_continuation,
)
from providers.emulator.wires import AnthropicWire, Conversation, Counts, GeminiWire, OpenAIWire, dumps

FAULT_KINDS = ("status", "stall", "cut", "malformed", "error")
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie"})
_PROVIDER_ALIASES = {"google": "gemini"}
_CACHE_TTL_S = 300.0


@dataclass(frozen=True, slots=True)
class Timing:
    ttft_ms: float
    chunk_ms: float
    chunks: int | None = None  # None: the answer's natural length


# Realistic defaults per provider (first path segment); anything else gets _OTHER.
_DEFAULT_TIMING = {
    "groq": Timing(150, 6),
    "gateway": Timing(180, 6),
    "gemini": Timing(350, 20),
    "anthropic": Timing(600, 15),
    "openai": Timing(400, 15),
    "local": Timing(80, 12),
}
_OTHER = Timing(300, 15)
_FAST = Timing(20, 3)


@dataclass(slots=True)
class Fault:
    provider: str
    kind: str
    status: int = 503
    retry_after: float | None = None
    after_tokens: int = 0
    stall_ms: float = 30_000
    abort: bool = False
    mid_event: bool = False
    times: int | None = None
    skip: int = 0  # matching requests let through untouched before the fault applies

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Fault:
        kind = spec.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        provider = str(spec.get("provider") or "*")
        fault = cls(provider=_PROVIDER_ALIASES.get(provider, provider), kind=kind)
        for name in ("status", "after_tokens", "times", "skip"):
            if spec.get(name) is not None:
                setattr(fault, name, int(spec[name]))
        for name in ("retry_after", "stall_ms"):
            if spec.get(name) is not None:
                setattr(fault, name, float(spec[name]))
        fault.abort = bool(spec.get("abort", False))
        fault.mid_event = bool(spec.get("mid_event", False))
        if fault.times is not None and fault.times < 1:
            raise ValueError("times must be >= 1")
        if fault.skip < 0:
            raise ValueError("skip must be >= 0")
        return fault


def _merge(base: Timing, override: dict[str, Any] | None) -> Timing:
    if not override:
        return base
    return replace(base, **override)


class Emulator:
    """The emulator's state: faults, timing overrides, request log, prompt cache."""

    def __init__(
        self,
        *,
        fast: bool = False,
        ttft_ms: float | None = None,
        chunk_ms: float | None = None,
        chunks: int | None = None,
        log_size: int = 2000,
    ) -> None:
        self.fast = fast
        self.cli_override = {
            k: v
            for k, v in (("ttft_ms", ttft_ms), ("chunk_ms", chunk_ms), ("chunks", chunks))
            if v is not None
        }
        self.faults: list[Fault] = []
        self.timing_overrides: dict[str, dict[str, Any]] = {}
        self.requests: deque[dict[str, Any]] = deque(maxlen=log_size)
        self._seen_prompts: dict[str, float] = {}

    # ------------------------------------------------------------------ state

    def timing_for(self, provider: str) -> Timing:
        timing = _FAST if self.fast else _DEFAULT_TIMING.get(provider, _OTHER)
        timing = _merge(timing, self.cli_override)
        timing = _merge(timing, self.timing_overrides.get("*"))
        return _merge(timing, self.timing_overrides.get(provider))

    def take_fault(self, provider: str) -> Fault | None:
        for i, fault in enumerate(self.faults):
            if fault.provider in (provider, "*"):
                if fault.skip:
                    fault.skip -= 1  # this request passes; the fault waits for a later one
                    return None
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self.faults[i]
                return fault
        return None

    def cached_tokens(self, where: str, messages: list[tuple[str, str]], input_tokens: int) -> int:
        """Cached input tokens when this prompt, or its prefix, was seen recently by the same
        provider and model (``where``): a vendor's prompt cache is its own."""
        now = time.monotonic()
        if len(self._seen_prompts) > 10_000:
            self._seen_prompts = {k: t for k, t in self._seen_prompts.items() if now - t < _CACHE_TTL_S}
        full = where + conversation_key(messages)
        prefix = where + conversation_key(messages[:-1]) if len(messages) > 1 else ""
        cached = 0
        if now - self._seen_prompts.get(full, -1e9) < _CACHE_TTL_S:
            cached = input_tokens
        elif prefix and now - self._seen_prompts.get(prefix, -1e9) < _CACHE_TTL_S:
            cached = count_tokens(" ".join(text for _, text in messages[:-1]))
        self._seen_prompts[full] = now
        # Providers cache in blocks; report whole blocks only.
        return min(input_tokens, cached) // 16 * 16

    def log(self, request: Request, provider: str, model: str, body: Any) -> dict[str, Any]:
        headers = {k: ("[redacted]" if k in _SECRET_HEADERS else v) for k, v in request.headers.items()}
        query = {k: ("[redacted]" if k == "key" else v) for k, v in request.query_params.items()}
        entry = {
            "time": time.time(),
            "method": request.method,
            "path": request.url.path,
            "client_port": request.client.port if request.client else None,  # which connection
            "query": query,
            "provider": provider,
            "model": model,
            "headers": headers,
            "body": body,
            "outcome": {"status": None, "fault": None, "tokens_sent": 0, "finished": False},
        }
        self.requests.append(entry)
        return entry

    # ------------------------------------------------------------------ HTTP

    async def dispatch(self, request: Request) -> Any:
        path = request.url.path
        segments = path.strip("/").split("/")
        provider = segments[0]
        if provider == "_control":
            return await self.control(request, "/".join(segments[1:]))
        rest = "/".join(segments[1:])
        last = segments[-1]
        method = request.method
        if method == "POST" and rest.endswith("chat/completions"):
            return await self.generate(request, provider, OpenAIWire)
        if method == "POST" and (":streamGenerateContent" in last or ":generateContent" in last):
            return await self.generate(request, provider, GeminiWire)
        if method == "POST" and rest.endswith("messages"):
            return await self.generate(request, provider, AnthropicWire)
        if method == "GET" and rest.endswith("models"):
            if "v1beta" in segments:
                wire: Any = GeminiWire
            elif "anthropic-version" in request.headers:
                wire = AnthropicWire
            else:
                wire = OpenAIWire
            entry = self.log(request, provider, "", None)
            if not _has_key(request):
                return self._error(wire, 401, _NO_KEY[wire.name], entry)
            entry["outcome"].update(status=200, finished=True)
            return JSONResponse(wire.models(provider))
        return JSONResponse({"error": {"message": f"no emulated endpoint for {method} {path}"}}, 404)

    def _error(
        self, wire: Any, status: int, message: str, entry: dict[str, Any], retry_after: float | None = None
    ) -> Response:
        entry["outcome"].update(status=status, finished=True)
        headers = {}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        return Response(
            dumps(wire.error(status, message)), status, headers=headers, media_type="application/json"
        )

    async def generate(self, request: Request, provider: str, wire_cls: Any) -> Any:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        if wire_cls is GeminiWire:
            action = request.url.path.rsplit("/", 1)[-1]
            model, _, method = action.partition(":")
            model = model.removeprefix("models/")
        else:
            model = str(body.get("model", "")) if isinstance(body, dict) else ""
        entry = self.log(request, provider, model, body)
        if not _has_key(request):
            return self._error(wire_cls, 401, _NO_KEY[wire_cls.name], entry)
        if not isinstance(body, dict):
            return self._error(wire_cls, 400, "the request body is not valid JSON", entry)
        if wire_cls is GeminiWire:
            conv = GeminiWire.parse(body, model, stream=method == "streamGenerateContent")
        elif wire_cls is AnthropicWire:
            conv = AnthropicWire.parse(body, request.headers.get("anthropic-version", ""))
        else:
            conv = OpenAIWire.parse(body)
        if conv.reject:
            return self._error(wire_cls, 400, conv.reject, entry)

        fault = self.take_fault(provider)
        if fault is not None:
            entry["outcome"]["fault"] = fault.kind
            if fault.kind == "status":
                message = _FAULT_MESSAGES.get(fault.status, f"emulated error {fault.status}")
                return self._error(wire_cls, fault.status, message, entry, fault.retry_after)

        timing = self.timing_for(provider)
        plan = self._plan(conv, wire_cls, timing, f"{provider}/{model}:")
        if not conv.stream:
            return await self._complete(plan, fault, timing, entry)
        return _SSEStream(plan, fault, timing, entry)

    def _plan(self, conv: Conversation, wire_cls: Any, timing: Timing, where: str) -> _Plan:
        last_role, last_text = conv.last
        continuation = wants_continuation(last_role, last_text)
        answer = compose(
            conversation_key(conv.messages),
            conv.last_user_text,
            continuation,
            timing.chunks,
            conv.reasoning,
        )
        input_tokens = max(1, count_tokens(" ".join(text for _, text in conv.messages)))
        counts = Counts(input_tokens, self.cached_tokens(where, conv.messages, input_tokens))
        wire = wire_cls(conv)

        reasoning_tokens = list(answer.reasoning_tokens)
        text_tokens = list(answer.text_tokens)
        tool_call = next_tool_call(conv, answer.topic)
        if tool_call is None and last_role == "tool":
            text_tokens = tokenize(quote_tool_results(conv.tool_results))
        if conv.media:
            text_tokens = tokenize(f"Watching {conv.media[0]}: ") + text_tokens
        reason = "tool" if tool_call else "stop"
        if conv.max_tokens is not None and len(reasoning_tokens) + len(text_tokens) > conv.max_tokens:
            reasoning_tokens = reasoning_tokens[: conv.max_tokens]
            text_tokens = text_tokens[: max(0, conv.max_tokens - len(reasoning_tokens))]
            reason = "length" if not tool_call else reason

        preamble: list[bytes] = []
        if isinstance(wire, AnthropicWire):
            preamble.append(wire.message_start(counts))
        elif isinstance(wire, GeminiWire):
            wire.set_prompt_usage(counts)
        preamble.extend(wire.preamble())

        frames: list[tuple[bytes, bool]] = [(wire.reasoning(t), True) for t in reasoning_tokens]
        if reasoning_tokens:
            frames.extend((f, False) for f in wire.between())
        if tool_call:
            frames.extend((f, True) for f in wire.tool_call(*tool_call))
        else:
            frames.extend((wire.text(t), True) for t in text_tokens)
        return _Plan(
            wire=wire,
            preamble=b"".join(preamble),
            frames=frames,
            reasoning_count=len(reasoning_tokens),
            reason=reason,
            counts=counts,
            text="".join(text_tokens),
            reasoning="".join(reasoning_tokens),
            tool=tool_call,
        )

    async def _complete(self, plan: _Plan, fault: Fault | None, timing: Timing, entry: dict[str, Any]) -> Any:
        await asyncio.sleep((timing.ttft_ms + timing.chunk_ms * len(plan.frames)) / 1000)
        outcome = entry["outcome"]
        if fault is not None and fault.kind == "stall":
            await asyncio.sleep(fault.stall_ms / 1000)
        if fault is not None and fault.kind == "cut":
            outcome.update(status=200, billed=_billed(plan.counts))
            return _Abort()
        if fault is not None and fault.kind == "malformed":
            outcome.update(status=200, finished=True, billed=_billed(plan.counts))
            return Response(b'{"id": "truncated', 200, media_type="application/json")
        if fault is not None and fault.kind == "error":  # no stream to put it in: the wire's error status
            return self._error(plan.wire, 529 if plan.wire.name == "anthropic" else 503, "Overloaded", entry)
        counts = plan.counts
        counts.output_tokens = (
            len(plan.frames) if plan.tool else len(plan.text.split()) + plan.reasoning_count
        )
        counts.reasoning_tokens = plan.reasoning_count
        outcome.update(status=200, tokens_sent=len(plan.frames), finished=True, billed=_billed(counts))
        return Response(dumps(plan.wire.complete(plan.text, plan.reasoning, plan.tool, plan.reason, counts)))

    # ------------------------------------------------------------------ control

    async def control(self, request: Request, action: str) -> Response:
        method = request.method
        if action == "health":
            return JSONResponse({"ok": True})
        if action == "faults":
            if method == "POST":
                try:
                    spec = json.loads(await request.body() or b"{}")
                    fault = Fault.from_spec(spec)
                except (ValueError, TypeError) as err:
                    return JSONResponse({"error": str(err)}, 400)
                self.faults.append(fault)
                return JSONResponse({"ok": True, "fault": asdict(fault)})
            if method == "DELETE":
                self.faults.clear()
                self.timing_overrides.clear()
                return JSONResponse({"ok": True})
            return JSONResponse({"faults": [asdict(f) for f in self.faults]})
        if action == "timing":
            if method == "POST":
                try:
                    spec = json.loads(await request.body() or b"{}")
                    provider = str(spec.pop("provider", "*"))
                    override = {
                        k: (int(v) if k == "chunks" else float(v)) if v is not None else None
                        for k, v in spec.items()
                        if k in ("ttft_ms", "chunk_ms", "chunks")
                    }
                except (ValueError, TypeError, AttributeError) as err:
                    return JSONResponse({"error": str(err)}, 400)
                provider = _PROVIDER_ALIASES.get(provider, provider)
                self.timing_overrides.setdefault(provider, {}).update(override)
                return JSONResponse({"ok": True, "timing": self.timing_overrides})
            if method == "DELETE":
                self.timing_overrides.clear()
                return JSONResponse({"ok": True})
            return JSONResponse({"timing": self.timing_overrides})
        if action == "requests":
            if method == "DELETE":
                self.requests.clear()
                return JSONResponse({"ok": True})
            return JSONResponse({"requests": list(self.requests)})
        return JSONResponse({"error": f"unknown control endpoint {action!r}"}, 404)


_NO_KEY = {
    "openai": "You didn't provide an API key. You need to provide your API key in an Authorization header.",
    "gemini": "Method doesn't allow unregistered callers. Please use an API key.",
    "anthropic": "x-api-key header is required",
}
_FAULT_MESSAGES = {
    429: "Rate limit reached for requests (emulated). Please try again later.",
    500: "Internal server error (emulated).",
    502: "Bad gateway (emulated).",
    503: "Service unavailable: the model is overloaded (emulated). Please try again later.",
    504: "Gateway timeout (emulated).",
    529: "Overloaded (emulated).",
}


def _has_key(request: Request) -> bool:
    headers = request.headers
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        auth = auth[7:]
    return bool(
        auth.strip()
        or headers.get("x-api-key", "").strip()
        or headers.get("x-goog-api-key", "").strip()
        or request.query_params.get("key", "").strip()
    )


@dataclass(slots=True)
class _Plan:
    wire: Any
    preamble: bytes
    frames: list[tuple[bytes, bool]]  # (frame, counts as a token)
    reasoning_count: int
    reason: str
    counts: Counts
    text: str
    reasoning: str
    tool: tuple[str, dict[str, Any]] | None


_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def _billed(counts: Counts) -> dict[str, int]:
    """The vendor's bill for a request, as the request log shows it (see ``outcome.billed``)."""
    return {
        "input_tokens": counts.input_tokens,
        "cached_input_tokens": counts.cached_tokens,
        "output_tokens": counts.output_tokens,
        "reasoning_tokens": counts.reasoning_tokens,
    }


class _Abort:
    """An ASGI response that starts a body and drops the connection."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        # Returning without the final body message makes the server close the connection.


class _SSEStream:
    """Sends a planned stream with its timing and fault, stopping when the client leaves."""

    def __init__(self, plan: _Plan, fault: Fault | None, timing: Timing, entry: dict[str, Any]) -> None:
        self.plan = plan
        self.fault = fault
        self.timing = timing
        self.entry = entry

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            await self._send(send, gone)
        finally:
            watcher.cancel()

    async def _apply_fault(
        self, send: Any, gone: asyncio.Event, upcoming: bytes = b"", held: list[bytes] | None = None
    ) -> bool:
        """Apply the fault at this point; True when the stream must end here. ``upcoming`` is the
        event due next; ``held``, the frames of a burst not sent yet: they go in the fault's write."""
        fault = self.fault
        assert fault is not None
        self.fault = None
        if fault.kind == "stall":
            try:
                await asyncio.wait_for(gone.wait(), fault.stall_ms / 1000)
            except TimeoutError:
                return False
            return True
        body = b"".join(held) if held else b""
        if fault.kind == "malformed":
            body += self.plan.wire.malformed()
        elif fault.kind == "error":
            body += self.plan.wire.stream_error()
        elif fault.mid_event:
            body += upcoming[: len(upcoming) // 2]
        if body:
            await send({"type": "http.response.body", "body": body, "more_body": True})
        if fault.kind == "cut" and fault.abort:
            self.entry["outcome"]["aborted"] = True
            return True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self.entry["outcome"]["finished"] = True
        return True

    async def _send(self, send: Any, gone: asyncio.Event) -> None:
        plan = self.plan
        outcome = self.entry["outcome"]
        outcome["status"] = 200
        billed = outcome["billed"] = _billed(plan.counts)  # the prompt is billed once the stream starts
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        if plan.preamble:
            await send({"type": "http.response.body", "body": plan.preamble, "more_body": True})
        ttft = self.timing.ttft_ms / 1000
        gap = self.timing.chunk_ms / 1000
        after = self.fault.after_tokens if self.fault else -1
        # chunk_ms 0 and no stall: after the first token the rest comes in one write (up to the fault
        # and what it sends), as from a vendor or proxy that buffers (a client then reads many chunks
        # at once).
        stall = self.fault is not None and self.fault.kind == "stall"
        burst: list[bytes] | None = [] if gap == 0 and not stall else None
        sent = 0
        for frame, is_token in plan.frames:
            if is_token:
                if sent == after and await self._apply_fault(send, gone, frame, burst):
                    return
                if sent == 0 or burst is None:
                    await asyncio.sleep(ttft if sent == 0 else gap)
                if gone.is_set():
                    return
                sent += 1
                outcome["tokens_sent"] = sent
                billed["output_tokens"] = sent if plan.tool is None else sent * 4
                billed["reasoning_tokens"] = min(sent, plan.reasoning_count)
            if burst is not None and sent > 1:
                burst.append(frame)
                continue
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        if burst:
            await send({"type": "http.response.body", "body": b"".join(burst), "more_body": True})
        if self.fault is not None and await self._apply_fault(send, gone):
            return
        counts = plan.counts
        counts.output_tokens = sent if plan.tool is None else sent * 4
        counts.reasoning_tokens = min(sent, plan.reasoning_count)
        tail = b"".join(plan.wire.finish(plan.reason, counts))
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        outcome["finished"] = True


class EmulatorApp:
    """The ASGI app: every HTTP request goes straight to ``Emulator.dispatch``.

    No router or middleware stack sits between a stream and the server: at 200+
    concurrent streams the per-chunk ``send`` wrappers would cost more than the chunk.
    """

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        response = await self.emulator.dispatch(Request(scope, receive))
        await response(scope, receive, send)


def create_app(
    *,
    fast: bool = False,
    ttft_ms: float | None = None,
    chunk_ms: float | None = None,
    chunks: int | None = None,
) -> EmulatorApp:
    return EmulatorApp(Emulator(fast=fast, ttft_ms=ttft_ms, chunk_ms=chunk_ms, chunks=chunks))
