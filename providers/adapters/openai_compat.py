"""OpenAI-compatible chat completions, on the official ``openai`` SDK.

Groq, the Vercel AI Gateway, OpenAI, Ollama, vLLM and llama.cpp's server are all
configurations of this one adapter. Reasoning text is read from ``delta.reasoning``
(Groq, the Gateway, vLLM) or ``delta.reasoning_content`` (DeepSeek style).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator
from typing import Any

import httpx2
import openai

from providers.adapters._common import (
    HEALTH_TIMEOUT_S,
    Deadline,
    Deltas,
    SdkErrors,
    SseEvents,
    drain,
    map_error,
    missing_key_error,
    parse_retry_after,
    sdk_client_options,
    status_error,
    tool_args,
)
from providers.base import ChatMessage, Provider, ProviderConfig, ProviderError, ProviderRequest
from providers.events import (
    ACCEPTED,
    Event,
    Finish,
    ToolCall,
    ToolInputDelta,
    Usage,
)

_FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",
    "function_call": "tool-calls",
    "content_filter": "content-filter",
}


class OpenAICompatProvider(Provider):
    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._client: openai.AsyncOpenAI | None = None
        if config.api_key:
            self._client = openai.AsyncOpenAI(**sdk_client_options(config, openai.DefaultAsyncHttpxClient))

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[Event, None]:
        if self._client is None:
            raise missing_key_error(self.config)
        deadline = Deadline(self.config)
        # The SDK builds, authenticates and sends the request and maps HTTP errors;
        # the SSE body is parsed here, once, into plain dicts: the SDK's per-chunk
        # pydantic models cost more CPU than everything else on this path. The body goes
        # through the SDK's own ``post`` (its documented way to send a body as it is): it is
        # built here in the wire's shape already, so ``create``'s walk of every parameter
        # against its typed signature (0.2 ms per request, 0.45 ms on a server just woken;
        # bench/CHANGES.md) would change nothing in it.
        body, headers = _params(request)
        try:
            response = await deadline.run(
                self._client.post(
                    "/chat/completions",
                    cast_to=httpx2.Response,
                    body=body,
                    options={"headers": headers, "security": {"bearer_auth": True}},
                    stream=True,
                )
            )
        except ProviderError:
            raise
        except Exception as err:
            raise self._map_error(err) from err

        finish: str | None = None
        tools: dict[int, list[Any]] = {}  # index -> [id, name, [argument pieces]]
        # Chunks that arrive together (one network read: under load they queue up) go on as one
        # event: one router step, one frame, one wake-up per subscriber instead of one per chunk.
        # Text and thinking are kept apart and in order: one of them is pending at a time.
        deltas = Deltas()
        try:
            yield ACCEPTED  # the vendor took the request: it bills it, whatever happens next
            received = response.aiter_bytes()
            events = SseEvents()
            done = False
            while not done:
                try:
                    data = await deadline.run(anext(received))
                except StopAsyncIteration:
                    break
                for payload in events.feed(data):
                    if payload.startswith(b"[DONE]"):
                        done = True
                        break
                    chunk = json.loads(payload)
                    if "error" in chunk:
                        raise self._stream_error(chunk["error"])
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta") or {}
                        reasoning = delta.get("reasoning") or delta.get("reasoning_content")
                        if reasoning:
                            deadline.has_content = True
                            if (before := deltas.thought(reasoning)) is not None:
                                yield before
                        content = delta.get("content")
                        if content:
                            deadline.has_content = True
                            if (before := deltas.text(content)) is not None:
                                yield before
                        if delta.get("tool_calls"):
                            deadline.has_content = True
                            for event in deltas.flush():
                                yield event
                            for call_id, name, piece in _add_tool_call_pieces(tools, delta["tool_calls"]):
                                yield ToolInputDelta(call_id, name, piece)
                        if choice.get("finish_reason"):
                            finish = _FINISH_REASONS.get(choice["finish_reason"], "other")
                    if chunk.get("usage"):
                        for event in deltas.flush():
                            yield event
                        yield _map_usage(chunk["usage"])  # before the end: a cut after it keeps it
                # The read is used up: what it brought goes on before the next wait.
                for event in deltas.flush():
                    yield event
            if done:
                await drain(received)
            if finish is None:
                raise ProviderError(
                    "stream cut: the stream ended without a finish_reason",
                    provider=self.config.name,
                    retryable=True,
                )
            for index in sorted(tools):
                call_id, name, pieces = tools[index]
                yield ToolCall(id=call_id, name=name, args=tool_args(self.config.name, name, "".join(pieces)))
            yield Finish(finish)
        except ProviderError:
            for event in deltas.flush():  # what came before the break is the answer's
                yield event
            raise
        except Exception as err:
            for event in deltas.flush():
                yield event
            raise self._map_error(err, streaming=True) from err
        finally:
            deadline.close()
            with contextlib.suppress(Exception):
                await response.aclose()

    def _stream_error(self, error: Any) -> ProviderError:
        """An error event inside a 200 stream (``data: {"error": ...}``)."""
        message = error.get("message") if isinstance(error, dict) else str(error)
        return ProviderError(f"stream error: {message}", provider=self.config.name, retryable=True)

    async def health(self) -> bool:
        if self._client is None:
            return False
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                await self._client.models.list(timeout=HEALTH_TIMEOUT_S)
        except Exception:
            return False
        return True

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

    def _map_error(self, err: Exception, *, streaming: bool = False) -> ProviderError:
        return map_error(err, self.config.name, self._errors, streaming=streaming)

    @property
    def _errors(self) -> SdkErrors:
        name = self.config.name

        def status(err: Exception, streaming: bool) -> ProviderError | None:
            if not isinstance(err, openai.APIStatusError):
                return None
            code = err.status_code
            return status_error(name, code, f"{code} {err.message}", parse_retry_after(err.response.headers))

        return SdkErrors(
            status=status,
            timeouts=(openai.APITimeoutError,),
            connections=(openai.APIConnectionError,),
            api_errors=(openai.APIError,),
            # AttributeError/TypeError: a chunk that parses as JSON but not into what we expect.
            malformed=(ValueError, AttributeError, TypeError),
        )


def _message(message: ChatMessage) -> dict[str, Any]:
    """One message in the chat completions shape, tool calls and tool results included."""
    if message.role == "tool":
        if not message.tool_call_id:  # a result without its call: the wire has no shape for it
            return {"role": "user", "content": f"Tool result:\n{message.content}"}
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.args, ensure_ascii=False)},
                }
                for call in message.tool_calls
            ],
        }
    return {"role": message.role, "content": message.content}


def _params(request: ProviderRequest) -> tuple[dict[str, Any], dict[str, str]]:
    """The request's body, as the chat completions wire has it, and its extra headers."""
    messages = [_message(m) for m in request.messages]
    params: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool["name"],
                    "description": tool.get("description", ""),
                    "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
                },
            }
            for tool in request.tools
        ]
    return params, {"x-trace-id": request.trace_id} if request.trace_id else {}


def _add_tool_call_pieces(
    tools: dict[int, list[Any]], calls: list[dict[str, Any]]
) -> list[tuple[str, str, str]]:
    """Add streamed tool-call fragments; returns the argument pieces as (call id, name, piece)."""
    pieces = []
    for call in calls:
        slot = tools.setdefault(call.get("index", 0), ["", "", []])
        if call.get("id"):
            slot[0] = call["id"]
        function = call.get("function") or {}
        if function.get("name"):
            slot[1] = function["name"]
        if function.get("arguments"):
            slot[2].append(function["arguments"])
            pieces.append((slot[0], slot[1], function["arguments"]))
    return pieces


def _map_usage(usage: dict[str, Any]) -> Usage:
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=usage.get("prompt_tokens") or 0,
        output_tokens=usage.get("completion_tokens") or 0,
        cached_input_tokens=prompt_details.get("cached_tokens") or 0,
        reasoning_tokens=completion_details.get("reasoning_tokens") or 0,
    )
