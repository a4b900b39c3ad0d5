"""The three wire formats the emulator speaks: parse a request, render its frames.

Each wire turns a request body into a ``Conversation`` and renders the answer as
ready-to-send SSE frames (bytes), so the streaming loop only sleeps and sends.
Frames are built from pre-encoded pieces: one small bytes join per token.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

REASONING_MARKERS = ("reason", "r1", "gpt-oss", "qwq")
THINKING_MARKERS = ("pro", "thinking")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@lru_cache(maxsize=8192)
def enc(text: str) -> bytes:
    return json.dumps(text).encode()


@dataclass(slots=True)
class Conversation:
    """A request, reduced to what the answer depends on."""

    model: str
    messages: list[tuple[str, str]]  # (role, text); system first when there is one
    stream: bool = True
    max_tokens: int | None = None
    reasoning: bool = False
    include_usage: bool = False
    tools: list[str] = field(default_factory=list)
    reject: str = ""  # a 400 message when the request is invalid for this wire
    media: list[str] = field(default_factory=list)  # file URIs sent with the prompt (Gemini fileData)

    @property
    def last(self) -> tuple[str, str]:
        return self.messages[-1] if self.messages else ("user", "")

    @property
    def last_user_text(self) -> str:
        for role, text in reversed(self.messages):
            if role == "user":
                return text
        return ""

    @property
    def tool_results(self) -> list[str]:
        """The tool results sent since the last user message (role "tool" in every wire), in order."""
        results: list[str] = []
        for role, text in reversed(self.messages):
            if role == "user":
                break
            if role == "tool":
                results.append(text)
        return results[::-1]


@dataclass(slots=True)
class Counts:
    input_tokens: int
    cached_tokens: int
    output_tokens: int = 0
    reasoning_tokens: int = 0


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    out.append(part["text"])
                elif isinstance(part.get("content"), str | list):  # anthropic tool_result
                    out.append(_text_of(part["content"]))
        return "\n".join(out)
    return ""


# --------------------------------------------------------------------------- OpenAI


class OpenAIWire:
    name = "openai"

    @staticmethod
    def parse(body: dict[str, Any]) -> Conversation:
        model = str(body.get("model") or "")
        messages = [
            (str(m.get("role", "user")), _text_of(m.get("content"))) for m in body.get("messages") or []
        ]
        tools = [
            t["function"]["name"]
            for t in body.get("tools") or []
            if isinstance(t, dict) and isinstance(t.get("function"), dict) and "name" in t["function"]
        ]
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        return Conversation(
            model=model,
            messages=messages,
            stream=bool(body.get("stream")),
            max_tokens=int(max_tokens) if max_tokens else None,
            reasoning=any(m in model.lower() for m in REASONING_MARKERS),
            include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
            tools=tools,
            reject="" if messages else "'messages' must contain at least one message",
        )

    def __init__(self, conv: Conversation) -> None:
        self.conv = conv
        self.id = "chatcmpl-" + secrets.token_hex(12)
        self.created = int(time.time())
        self._head = (
            b'data: {"id":"%s","object":"chat.completion.chunk","created":%d,"model":%s,'
            b'"system_fingerprint":"fp_emulator","choices":[{"index":0,"delta":{'
            % (self.id.encode(), self.created, enc(conv.model))
        )

    def preamble(self) -> list[bytes]:
        return [self._head + b'"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n']

    def reasoning(self, token: str) -> bytes:
        return self._head + b'"reasoning":' + enc(token) + b'},"logprobs":null,"finish_reason":null}]}\n\n'

    def text(self, token: str) -> bytes:
        return self._head + b'"content":' + enc(token) + b'},"logprobs":null,"finish_reason":null}]}\n\n'

    def between(self) -> list[bytes]:
        return []

    def tool_call(self, name: str, args: dict[str, Any]) -> list[bytes]:
        call_id = "call_" + secrets.token_hex(8)
        raw = json.dumps(args)
        third = max(1, len(raw) // 3)
        pieces = [raw[:third], raw[third : 2 * third], raw[2 * third :]]
        first = {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        frames = [self._head + b'"tool_calls":' + dumps([first]) + b'},"finish_reason":null}]}\n\n']
        for piece in pieces:
            delta = [{"index": 0, "function": {"arguments": piece}}]
            frames.append(self._head + b'"tool_calls":' + dumps(delta) + b'},"finish_reason":null}]}\n\n')
        return frames

    @staticmethod
    def _usage(c: Counts) -> dict[str, Any]:
        return {
            "prompt_tokens": c.input_tokens,
            "completion_tokens": c.output_tokens,
            "total_tokens": c.input_tokens + c.output_tokens,
            "prompt_tokens_details": {"cached_tokens": c.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": c.reasoning_tokens},
        }

    def finish(self, reason: str, counts: Counts) -> list[bytes]:
        wire_reason = {"stop": "stop", "length": "length", "tool": "tool_calls"}[reason]
        frames = [self._head + b'},"logprobs":null,"finish_reason":"%s"}]}\n\n' % wire_reason.encode()]
        if self.conv.include_usage:
            usage = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.conv.model,
                "system_fingerprint": "fp_emulator",
                "choices": [],
                "usage": self._usage(counts),
            }
            frames.append(b"data: " + dumps(usage) + b"\n\n")
        frames.append(b"data: [DONE]\n\n")
        return frames

    def malformed(self) -> bytes:
        return self._head + b'"content":"unterminated\n\n'

    def stream_error(self) -> bytes:
        error = {"message": "The server is overloaded (emulated).", "type": "server_error", "code": None}
        return b"data: " + dumps({"error": error}) + b"\n\n"

    def complete(
        self, text: str, reasoning: str, tool: tuple[str, dict[str, Any]] | None, reason: str, counts: Counts
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text if not tool else None}
        if reasoning:
            message["reasoning"] = reasoning
        if tool:
            message["tool_calls"] = [
                {
                    "id": "call_" + secrets.token_hex(8),
                    "type": "function",
                    "function": {"name": tool[0], "arguments": json.dumps(tool[1])},
                }
            ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.conv.model,
            "system_fingerprint": "fp_emulator",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": {"stop": "stop", "length": "length", "tool": "tool_calls"}[reason],
                }
            ],
            "usage": self._usage(counts),
        }

    @staticmethod
    def error(status: int, message: str) -> dict[str, Any]:
        kind, code = {
            400: ("invalid_request_error", None),
            401: ("invalid_request_error", "invalid_api_key"),
            403: ("permission_denied", None),
            404: ("invalid_request_error", "model_not_found"),
            429: ("tokens", "rate_limit_exceeded"),
        }.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    @staticmethod
    def models(provider: str) -> dict[str, Any]:
        ids = ["llama-3.3-70b-versatile", "llama-3.1-8b-instant", "openai/gpt-oss-120b", "qwen/qwen3-32b"]
        now = int(time.time())
        return {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": now, "owned_by": provider} for m in ids],
        }


# --------------------------------------------------------------------------- Gemini

_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class GeminiWire:
    name = "gemini"

    @staticmethod
    def parse(body: dict[str, Any], model: str, stream: bool) -> Conversation:
        messages: list[tuple[str, str]] = []
        system = body.get("systemInstruction") or body.get("system_instruction")
        if system:
            messages.append(("system", _text_of(system.get("parts") if isinstance(system, dict) else system)))
        media: list[str] = []
        for content in body.get("contents") or []:
            parts = content.get("parts") or []
            responses = [
                p["functionResponse"] for p in parts if isinstance(p, dict) and "functionResponse" in p
            ]
            if responses:
                messages.extend(("tool", json.dumps(r.get("response"))) for r in responses)
                continue
            # Proto JSON: the API reads camelCase and snake_case names alike (the SDK sends both kinds).
            media += [
                str(data.get("fileUri") or data.get("file_uri") or "")
                for p in parts
                if isinstance(p, dict) and isinstance(data := p.get("fileData") or p.get("file_data"), dict)
            ]
            role = "assistant" if content.get("role") == "model" else "user"
            messages.append((role, _text_of(parts)))
        config = body.get("generationConfig") or body.get("generation_config") or {}
        thinking = config.get("thinkingConfig") or config.get("thinking_config") or {}
        include = thinking.get("includeThoughts") or thinking.get("include_thoughts")
        tools = [
            d["name"]
            for t in body.get("tools") or []
            for d in (t.get("functionDeclarations") or t.get("function_declarations") or [])
            if "name" in d
        ]
        max_tokens = config.get("maxOutputTokens") or config.get("max_output_tokens")
        return Conversation(
            model=model,
            messages=messages,
            stream=stream,
            max_tokens=int(max_tokens) if max_tokens else None,
            reasoning=bool(include) and any(m in model.lower() for m in THINKING_MARKERS),
            include_usage=True,
            tools=tools,
            reject=""
            if body.get("contents")
            else "* GenerateContentRequest.contents: contents is not specified",
            media=media,
        )

    def __init__(self, conv: Conversation) -> None:
        self.conv = conv
        self.response_id = secrets.token_urlsafe(16)
        self._tail_prefix = b'],"role":"model"},"index":0}],"modelVersion":%s,"responseId":"%s"' % (
            enc(conv.model),
            self.response_id.encode(),
        )
        self._usage_so_far: bytes = b""

    def set_prompt_usage(self, counts: Counts) -> None:
        cached = b',"cachedContentTokenCount":%d' % counts.cached_tokens if counts.cached_tokens else b""
        self._usage_so_far = b',"usageMetadata":{"promptTokenCount":%d,"totalTokenCount":%d%s}' % (
            counts.input_tokens,
            counts.input_tokens,
            cached,
        )

    def preamble(self) -> list[bytes]:
        return []

    def _part(self, part: bytes) -> bytes:
        return (
            b'data: {"candidates":[{"content":{"parts":['
            + part
            + self._tail_prefix
            + self._usage_so_far
            + b"}\r\n\r\n"
        )

    def reasoning(self, token: str) -> bytes:
        return self._part(b'{"text":' + enc(token) + b',"thought":true}')

    def text(self, token: str) -> bytes:
        return self._part(b'{"text":' + enc(token) + b"}")

    def between(self) -> list[bytes]:
        return []

    def tool_call(self, name: str, args: dict[str, Any]) -> list[bytes]:
        return [self._part(b'{"functionCall":' + dumps({"name": name, "args": args}) + b"}")]

    @staticmethod
    def _usage(c: Counts) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "promptTokenCount": c.input_tokens,
            "candidatesTokenCount": c.output_tokens - c.reasoning_tokens,
            "totalTokenCount": c.input_tokens + c.output_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": c.input_tokens}],
        }
        if c.cached_tokens:
            usage["cachedContentTokenCount"] = c.cached_tokens
        if c.reasoning_tokens:
            usage["thoughtsTokenCount"] = c.reasoning_tokens
        return usage

    def finish(self, reason: str, counts: Counts) -> list[bytes]:
        chunk = {
            "candidates": [
                {
                    "content": {"parts": [{"text": ""}], "role": "model"},
                    "finishReason": "MAX_TOKENS" if reason == "length" else "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": self._usage(counts),
            "modelVersion": self.conv.model,
            "responseId": self.response_id,
        }
        return [b"data: " + dumps(chunk) + b"\r\n\r\n"]

    def malformed(self) -> bytes:
        return b'data: {"candidates":[{"content":{"parts":[{"text":"unterminated\r\n\r\n'

    def stream_error(self) -> bytes:
        return b"data: " + dumps(self.error(503, "The model is overloaded (emulated).")) + b"\r\n\r\n"

    def complete(
        self, text: str, reasoning: str, tool: tuple[str, dict[str, Any]] | None, reason: str, counts: Counts
    ) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        if reasoning:
            parts.append({"text": reasoning, "thought": True})
        if tool:
            parts.append({"functionCall": {"name": tool[0], "args": tool[1]}})
        else:
            parts.append({"text": text})
        return {
            "candidates": [
                {
                    "content": {"parts": parts, "role": "model"},
                    "finishReason": "MAX_TOKENS" if reason == "length" else "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": self._usage(counts),
            "modelVersion": self.conv.model,
            "responseId": self.response_id,
        }

    @staticmethod
    def error(status: int, message: str) -> dict[str, Any]:
        return {
            "error": {
                "code": status,
                "message": message,
                "status": _GEMINI_STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"),
            }
        }

    @staticmethod
    def models(provider: str) -> dict[str, Any]:
        ids = ["gemini-3.8-flash", "gemini-3.8-pro", "gemini-2.5-flash", "gemini-2.5-pro"]
        return {
            "models": [
                {
                    "name": f"models/{m}",
                    "displayName": m,
                    "inputTokenLimit": 1048576,
                    "outputTokenLimit": 65536,
                    "supportedGenerationMethods": ["generateContent", "countTokens"],
                }
                for m in ids
            ]
        }


# --------------------------------------------------------------------------- Anthropic

_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
# The API version the 2.x SDKs send; from it on, sampling parameters are rejected.
_NO_SAMPLING_SINCE = "2026-10-21"


def _sse(event: bytes, data: bytes) -> bytes:
    return b"event: " + event + b"\ndata: " + data + b"\n\n"


class AnthropicWire:
    name = "anthropic"

    @staticmethod
    def parse(body: dict[str, Any], api_version: str = "") -> Conversation:
        messages: list[tuple[str, str]] = []
        system = body.get("system")
        if system:
            messages.append(("system", _text_of(system)))
        for m in body.get("messages") or []:
            content = m.get("content")
            if isinstance(content, list) and any(
                isinstance(p, dict) and p.get("type") == "tool_result" for p in content
            ):
                for p in content:
                    if isinstance(p, dict) and p.get("type") == "tool_result":
                        messages.append(("tool", _text_of(p.get("content"))))
                continue
            messages.append((str(m.get("role", "user")), _text_of(content)))
        thinking = body.get("thinking") or {}
        reject = ""
        if not body.get("messages"):
            reject = "messages: Field required"
        elif not body.get("max_tokens"):
            reject = "max_tokens: Field required"
        elif api_version >= _NO_SAMPLING_SINCE:
            for name in ("temperature", "top_p", "top_k"):
                if name in body:
                    reject = f"{name}: Extra inputs are not permitted"
        return Conversation(
            model=str(body.get("model") or ""),
            messages=messages,
            stream=bool(body.get("stream")),
            max_tokens=int(body["max_tokens"]) if body.get("max_tokens") else None,
            reasoning=thinking.get("type") in ("enabled", "adaptive"),
            include_usage=True,
            tools=[t["name"] for t in body.get("tools") or [] if isinstance(t, dict) and "name" in t],
            reject=reject,
        )

    def __init__(self, conv: Conversation) -> None:
        self.conv = conv
        self.id = "msg_" + secrets.token_hex(12)
        self._index = 0
        self._text_delta_head = b""
        self._thinking_delta_head = b""

    def _open_block(self, block: dict[str, Any]) -> bytes:
        data = {"type": "content_block_start", "index": self._index, "content_block": block}
        return _sse(b"content_block_start", dumps(data))

    def _close_block(self) -> bytes:
        frame = _sse(b"content_block_stop", b'{"type":"content_block_stop","index":%d}' % self._index)
        self._index += 1
        return frame

    def message_start(self, counts: Counts) -> bytes:
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.conv.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": counts.input_tokens - counts.cached_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": counts.cached_tokens,
                "output_tokens": 1,
            },
        }
        return _sse(b"message_start", dumps({"type": "message_start", "message": message}))

    def preamble(self) -> list[bytes]:
        # message_start is built by the caller (it carries the input usage).
        frames = []
        if self.conv.reasoning:
            frames.append(self._open_block({"type": "thinking", "thinking": "", "signature": ""}))
        else:
            frames.append(self._open_block({"type": "text", "text": ""}))
        frames.append(_sse(b"ping", b'{"type":"ping"}'))
        return frames

    def reasoning(self, token: str) -> bytes:
        return _sse(
            b"content_block_delta",
            b'{"type":"content_block_delta","index":%d,"delta":{"type":"thinking_delta","thinking":%s}}'
            % (self._index, enc(token)),
        )

    def text(self, token: str) -> bytes:
        return _sse(
            b"content_block_delta",
            b'{"type":"content_block_delta","index":%d,"delta":{"type":"text_delta","text":%s}}'
            % (self._index, enc(token)),
        )

    def between(self) -> list[bytes]:
        signature = {
            "type": "content_block_delta",
            "index": self._index,
            "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM" + secrets.token_urlsafe(48)},
        }
        frames = [_sse(b"content_block_delta", dumps(signature)), self._close_block()]
        frames.append(self._open_block({"type": "text", "text": ""}))
        return frames

    def tool_call(self, name: str, args: dict[str, Any]) -> list[bytes]:
        # The text block opened by the preamble is closed empty; the tool_use block follows.
        frames = [self._close_block()]
        block = {"type": "tool_use", "id": "toolu_" + secrets.token_hex(12), "name": name, "input": {}}
        frames.append(self._open_block(block))
        raw = json.dumps(args)
        half = max(1, len(raw) // 2)
        for piece in (raw[:half], raw[half:]):
            delta = {
                "type": "content_block_delta",
                "index": self._index,
                "delta": {"type": "input_json_delta", "partial_json": piece},
            }
            frames.append(_sse(b"content_block_delta", dumps(delta)))
        return frames

    def finish(self, reason: str, counts: Counts) -> list[bytes]:
        stop_reason = {"stop": "end_turn", "length": "max_tokens", "tool": "tool_use"}[reason]
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": counts.output_tokens},
        }
        return [
            self._close_block(),
            _sse(b"message_delta", dumps(delta)),
            _sse(b"message_stop", b'{"type":"message_stop"}'),
        ]

    def malformed(self) -> bytes:
        return (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":\n\n'
        )

    def stream_error(self) -> bytes:
        return _sse(b"error", b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')

    def complete(
        self, text: str, reasoning: str, tool: tuple[str, dict[str, Any]] | None, reason: str, counts: Counts
    ) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reasoning:
            content.append({"type": "thinking", "thinking": reasoning, "signature": "EqQBCgIYAhIM"})
        if tool:
            content.append(
                {
                    "type": "tool_use",
                    "id": "toolu_" + secrets.token_hex(12),
                    "name": tool[0],
                    "input": tool[1],
                }
            )
        else:
            content.append({"type": "text", "text": text})
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.conv.model,
            "content": content,
            "stop_reason": {"stop": "end_turn", "length": "max_tokens", "tool": "tool_use"}[reason],
            "stop_sequence": None,
            "usage": {
                "input_tokens": counts.input_tokens - counts.cached_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": counts.cached_tokens,
                "output_tokens": counts.output_tokens,
            },
        }

    @staticmethod
    def error(status: int, message: str) -> dict[str, Any]:
        kind = _ANTHROPIC_ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": "req_" + secrets.token_hex(12),
        }

    @staticmethod
    def models(provider: str) -> dict[str, Any]:
        ids = ["claude-sonnet-5-5", "claude-haiku-5-5", "claude-opus-5-5"]
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-09-29T00:00:00Z"} for m in ids
        ]
        return {"data": data, "has_more": False, "first_id": ids[0], "last_id": ids[-1]}
