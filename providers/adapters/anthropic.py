"""Anthropic Messages, on the official ``anthropic`` SDK.

The SDK builds, authenticates and sends the request and maps HTTP error statuses; the SSE body is
parsed here (``SseEvents``, then each event's JSON into a plain dict), as in ``openai_compat``,
which saves the SDK's typed (pydantic) object for every event. Deltas that arrive in one network
read go on as one event.

System messages go to ``system=``; consecutive same-role messages are merged; a
trailing assistant message is a prefill that Claude continues. The 2.x SDK sends
API version 2026-10-21, which rejects sampling parameters (even
``temperature=1``), so ``request.temperature`` is not sent; with
``request.reasoning`` extended thinking is enabled with its own token budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import Any

import anthropic

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
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool-calls",
    "refusal": "content-filter",
}
# Extended thinking needs budget_tokens >= 1024 and below max_tokens.
_MIN_THINKING_BUDGET = 1024
_MAX_THINKING_BUDGET = 8192


class AnthropicProvider(Provider):
    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._client: anthropic.AsyncAnthropic | None = None
        if config.api_key:
            self._client = anthropic.AsyncAnthropic(
                **sdk_client_options(config, anthropic.DefaultAsyncHttpxClient)
            )

    def continuation_messages(
        self, messages: tuple[ChatMessage, ...], partial: str
    ) -> tuple[ChatMessage, ...]:
        """Claude continues a trailing assistant message natively (a prefill, which the API
        rejects when it ends in whitespace)."""
        return (*messages, ChatMessage("assistant", partial.rstrip()))

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[Event, None]:
        if self._client is None:
            raise missing_key_error(self.config)
        deadline = Deadline(self.config)
        # The SDK builds, authenticates and sends the request and maps HTTP errors; the SSE body is
        # parsed here, once, into plain dicts (as in openai_compat) instead of the SDK's typed events.
        call = self._client.messages.with_streaming_response.create(**_params(request))
        try:
            response = await deadline.run(call.__aenter__())
        except ProviderError:
            raise
        except Exception as err:
            raise self._map_error(err) from err

        usage = ACCEPTED
        stop_reason: str | None = None
        finished = False
        tool: list[Any] | None = None  # [id, name, [json pieces]] of the open tool_use block
        # Deltas read together (one network read) go on as one event, text and thinking kept apart
        # and in order, as in openai_compat.
        deltas = Deltas()
        events = SseEvents()
        try:
            yield usage  # the vendor took the request: it bills it, whatever happens next
            received = response.http_response.aiter_bytes()
            while not finished:
                try:
                    data = await deadline.run(anext(received))
                except StopAsyncIteration:
                    break
                for payload in events.feed(data):
                    event = json.loads(payload)
                    kind = event["type"]
                    if kind == "content_block_delta":
                        delta = event["delta"]
                        delta_kind = delta["type"]
                        if delta_kind == "text_delta":
                            if delta["text"]:
                                deadline.has_content = True
                                if (before := deltas.text(delta["text"])) is not None:
                                    yield before
                        elif delta_kind == "thinking_delta":
                            if delta["thinking"]:
                                deadline.has_content = True
                                if (before := deltas.thought(delta["thinking"])) is not None:
                                    yield before
                        elif delta_kind == "input_json_delta" and tool is not None:
                            tool[2].append(delta["partial_json"])
                            if delta["partial_json"]:
                                for pending in deltas.flush():
                                    yield pending
                                yield ToolInputDelta(tool[0], tool[1], delta["partial_json"])
                        # signature_delta: the thinking block's signature, not kept (see _params).
                        continue
                    for pending in deltas.flush():  # whatever comes next goes after them
                        yield pending
                    if kind == "message_start":
                        # The input is known (and billed) from here on; the output only at message_delta.
                        reported = event["message"]["usage"]
                        cached = reported.get("cache_read_input_tokens") or 0
                        written = reported.get("cache_creation_input_tokens") or 0
                        usage = Usage(
                            input_tokens=reported["input_tokens"] + cached + written,
                            output_tokens=reported.get("output_tokens") or 0,
                            cached_input_tokens=cached,
                            cache_write_tokens=written,
                            output_estimated=True,
                        )
                        yield usage
                    elif kind == "content_block_start":
                        block = event["content_block"]
                        if block["type"] == "tool_use":
                            deadline.has_content = True
                            tool = [block["id"], block["name"], []]
                    elif kind == "content_block_stop":
                        if tool is not None:
                            yield ToolCall(
                                id=tool[0],
                                name=tool[1],
                                args=tool_args(self.config.name, tool[1], "".join(tool[2])),
                            )
                            tool = None
                    elif kind == "message_delta":
                        if event["delta"].get("stop_reason"):
                            stop_reason = event["delta"]["stop_reason"]
                        output_tokens = (event.get("usage") or {}).get("output_tokens")
                        if output_tokens is not None:
                            usage = replace(usage, output_tokens=output_tokens, output_estimated=False)
                            yield usage
                    elif kind == "message_stop":
                        finished = True
                        break
                    elif kind == "error":
                        # An error inside the 200 stream (e.g. overloaded_error mid-answer).
                        raise self._stream_error(event.get("error"))
                    # ping, and event types added later: nothing to hand on.
                # The read is used up: what it brought goes on before the next wait.
                for pending in deltas.flush():
                    yield pending
            if finished:
                await drain(received)
            else:
                reason = (
                    "the body ended mid-event" if events.pending else "the stream ended without message_stop"
                )
                raise ProviderError(f"stream cut: {reason}", provider=self.config.name, retryable=True)
            yield Finish(_FINISH_REASONS.get(stop_reason or "", "other"))
        except ProviderError:
            for pending in deltas.flush():  # what came before the break is the answer's
                yield pending
            raise
        except Exception as err:
            for pending in deltas.flush():
                yield pending
            raise self._map_error(err, streaming=True) from err
        finally:
            deadline.close()
            with contextlib.suppress(Exception):
                await call.__aexit__(None, None, None)

    def _stream_error(self, error: Any) -> ProviderError:
        """An ``event: error`` inside a 200 stream: retryable, whatever its type."""
        message = (error.get("message") or error.get("type")) if isinstance(error, dict) else error
        return ProviderError(f"stream error: {message}", provider=self.config.name, retryable=True)

    async def health(self) -> bool:
        if self._client is None:
            return False
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                await self._client.models.list(limit=1, timeout=HEALTH_TIMEOUT_S)
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
            if not isinstance(err, anthropic.APIStatusError):
                return None
            code = err.status_code
            return status_error(name, code, f"{code} {err.message}", parse_retry_after(err.response.headers))

        return SdkErrors(
            status=status,
            timeouts=(anthropic.APITimeoutError,),
            connections=(anthropic.APIConnectionError,),
            # KeyError/TypeError/AttributeError: an event that parses as JSON but not into what we expect.
            malformed=(ValueError, KeyError, TypeError, AttributeError),
        )


def _blocks(message: ChatMessage) -> list[dict[str, Any]]:
    """One message as Messages API content blocks (empty text leaves no block: the API rejects it)."""
    if message.role == "tool":
        if not message.tool_call_id:
            return [{"type": "text", "text": f"Tool result:\n{message.content}"}]
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content}]
    blocks: list[dict[str, Any]] = []
    if message.content.strip():
        blocks.append({"type": "text", "text": message.content})
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.args} for c in message.tool_calls]
    return blocks


def _params(request: ProviderRequest) -> dict[str, Any]:
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            system.append(message.content)
            continue
        role = "assistant" if message.role == "assistant" else "user"  # tool results go in a user turn
        blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks  # the API wants turns to alternate: merge
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        # Plain text stays a plain string (consecutive texts joined), as before tools existed.
        if all(b["type"] == "text" for b in turn["content"]):
            turn["content"] = "\n\n".join(b["text"] for b in turn["content"])
    if turns and turns[-1]["role"] == "assistant" and isinstance(turns[-1]["content"], str):
        # A prefill: the API rejects one that ends in whitespace.
        turns[-1]["content"] = turns[-1]["content"].rstrip()
    max_tokens = request.max_tokens
    params: dict[str, Any] = {"model": request.model, "messages": turns, "stream": True}
    if system:
        params["system"] = "\n\n".join(system)
    # With extended thinking on, the API wants each earlier tool_use turn to carry its signed
    # thinking blocks, which are not kept: a step after a tool call goes without thinking.
    if request.reasoning and not any(m.tool_calls for m in request.messages):
        budget = max(_MIN_THINKING_BUDGET, min(_MAX_THINKING_BUDGET, request.max_tokens))
        params["thinking"] = {"type": "enabled", "budget_tokens": budget}
        max_tokens += budget  # thinking counts toward max_tokens: keep the answer's own budget
    params["max_tokens"] = max_tokens
    if request.tools:
        params["tools"] = [
            {
                "name": tool["name"],
                "description": tool.get("description", ""),
                "input_schema": tool.get("parameters") or {"type": "object", "properties": {}},
            }
            for tool in request.tools
        ]
    if request.trace_id:
        params["extra_headers"] = {"x-trace-id": request.trace_id}
    return params
