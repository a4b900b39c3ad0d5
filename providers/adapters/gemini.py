"""Google Gemini, on the ``google-genai`` SDK (the successor of ``google-generativeai``).

System messages become ``system_instruction``, assistant turns are role "model".
With ``request.reasoning`` the request asks for thought summaries, which arrive as
parts marked ``thought`` and become ``ReasoningDelta``. The SDK does not retry
unless asked to, and automatic function calling is turned off: tool calls are
returned, never executed here.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import re
from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import Any, cast

import httpx2
from google import genai
from google.genai import errors, types

from providers.adapters._common import (
    HEALTH_TIMEOUT_S,
    Deadline,
    SdkErrors,
    map_error,
    missing_key_error,
    parse_retry_after,
    status_error,
)
from providers.base import ChatMessage, Provider, ProviderConfig, ProviderError, ProviderRequest
from providers.events import ACCEPTED, Event, Finish, ReasoningDelta, TextDelta, ToolCall, Usage

_FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content-filter",
    "RECITATION": "content-filter",
    "BLOCKLIST": "content-filter",
    "PROHIBITED_CONTENT": "content-filter",
    "SPII": "content-filter",
    "IMAGE_SAFETY": "content-filter",
    "IMAGE_PROHIBITED_CONTENT": "content-filter",
}
_RETRY_DELAY = re.compile(r"^(\d+(?:\.\d+)?)s$")
# httpx2's default pool (100 connections) would queue the 101st concurrent stream.
_POOL_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
# The SDK nests several async generators around the HTTP response; closing the
# outer one leaves the response open until garbage collection. A response hook
# hands each response to the attempt that is awaiting it, which closes it itself.
_ATTEMPT_RESPONSES: contextvars.ContextVar[list[httpx2.Response] | None] = contextvars.ContextVar(
    "gemini_attempt_responses", default=None
)


async def _claim_response(response: httpx2.Response) -> None:
    responses = _ATTEMPT_RESPONSES.get()
    if responses is not None:
        responses.append(response)


class GeminiProvider(Provider):
    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._client: genai.Client | None = None
        if config.api_key:
            options: dict[str, Any] = {
                "api_version": "v1beta",
                "timeout": int(config.timeout_s * 1000),
                "async_client_args": {"limits": _POOL_LIMITS, "event_hooks": {"response": [_claim_response]}},
            }
            if config.base_url:
                options["base_url"] = config.base_url
            if config.extra_headers:
                options["headers"] = dict(config.extra_headers)
            self._client = genai.Client(api_key=config.api_key, http_options=types.HttpOptions(**options))

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[Event, None]:
        if self._client is None:
            raise missing_key_error(self.config)
        deadline = Deadline(self.config)
        contents, config = _params(request)
        sdk_stream: Any = None
        responses: list[httpx2.Response] = []
        finish: str | None = None
        usage: Usage | None = None  # the latest the vendor reported (running counts, chunk by chunk)
        passed_on: Usage | None = None  # the latest the router has
        called_tool = False
        try:
            claim = _ATTEMPT_RESPONSES.set(responses)
            try:
                sdk_stream = await deadline.run(
                    self._client.aio.models.generate_content_stream(
                        # Plain dicts: the SDK validates them into its own types.
                        model=request.model,
                        contents=cast(Any, contents),
                        config=cast(Any, config),
                    )
                )
            finally:
                _ATTEMPT_RESPONSES.reset(claim)
            if responses:  # the vendor took the request: it bills it, whatever happens next
                passed_on = ACCEPTED
                yield passed_on
            while True:
                # Set around each await only: this generator runs in its consumer's context.
                claim = _ATTEMPT_RESPONSES.set(responses)
                try:
                    chunk = await deadline.run(anext(sdk_stream))
                except StopAsyncIteration:
                    break
                finally:
                    _ATTEMPT_RESPONSES.reset(claim)
                if passed_on is None:
                    passed_on = ACCEPTED
                    yield passed_on
                if chunk.usage_metadata is not None:
                    usage = _map_usage(chunk.usage_metadata)
                    if usage.input_tokens != passed_on.input_tokens:
                        # The prompt's count, once: later chunks only move the output's, which is
                        # passed on when the stream ends (however it ends), not chunk by chunk; until
                        # then the router counts the output it has seen (Stop ends it unannounced).
                        passed_on = replace(usage, output_estimated=True)
                        yield passed_on
                if not chunk.candidates:
                    feedback = chunk.prompt_feedback
                    if feedback is not None and feedback.block_reason:
                        finish = "content-filter"
                    continue
                candidate = chunk.candidates[0]
                content = candidate.content
                if content is not None and content.parts:
                    for part in content.parts:
                        if part.text:
                            deadline.has_content = True
                            yield ReasoningDelta(part.text) if part.thought else TextDelta(part.text)
                        elif part.function_call is not None:
                            deadline.has_content = True
                            called_tool = True
                            call = part.function_call
                            yield ToolCall(
                                id=call.id or f"call_{call.name}",
                                name=call.name or "",
                                args=dict(call.args or {}),
                            )
                if candidate.finish_reason is not None:
                    reason = getattr(candidate.finish_reason, "value", candidate.finish_reason)
                    finish = _FINISH_REASONS.get(reason, "other")
            if usage is not None and usage is not passed_on:
                yield usage
                passed_on = usage
            if finish is None:
                raise ProviderError(
                    "stream cut: the stream ended without a finishReason",
                    provider=self.config.name,
                    retryable=True,
                )
            yield Finish("tool-calls" if called_tool and finish == "stop" else finish)
        except ProviderError:
            if usage is not None and usage is not passed_on:
                yield usage  # what the vendor reported before the stream broke
            elif passed_on is None and any(r.status_code == 200 for r in responses):
                yield ACCEPTED  # it took the request, then went quiet (a first-token timeout)
            raise
        except Exception as err:
            if usage is not None and usage is not passed_on:
                yield usage
            elif passed_on is None and any(r.status_code == 200 for r in responses):
                yield ACCEPTED
            raise self._map_error(err, streaming=deadline.has_content) from err
        finally:
            deadline.close()
            for response in responses:
                with contextlib.suppress(Exception):
                    await response.aclose()
            if sdk_stream is not None:
                with contextlib.suppress(Exception):
                    await sdk_stream.aclose()

    async def health(self) -> bool:
        if self._client is None:
            return False
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                await self._client.aio.models.list(config={"page_size": 1})
        except Exception:
            return False
        return True

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()

    def _map_error(self, err: Exception, *, streaming: bool = False) -> ProviderError:
        return map_error(err, self.config.name, self._errors, streaming=streaming)

    @property
    def _errors(self) -> SdkErrors:
        name = self.config.name

        def status(err: Exception, streaming: bool) -> ProviderError | None:
            if not isinstance(err, errors.APIError):
                return None
            code = err.code or None
            headers = getattr(getattr(err, "response", None), "headers", None)
            retry_after = parse_retry_after(headers) if headers is not None else None
            if retry_after is None:
                retry_after = _retry_delay(err.details)
            message = f"{code} {err.status or ''} {err.message or ''}".strip()
            return status_error(name, code, message, retry_after)

        # ValueError (the default "malformed"): errors.UnknownApiResponseError, a chunk that is not JSON.
        return SdkErrors(status=status)


def _retry_delay(details: Any) -> float | None:
    """Gemini's ``RetryInfo.retryDelay`` ("2s") from a 429 body."""
    try:
        for detail in details["error"]["details"]:
            match = _RETRY_DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    except (KeyError, TypeError, AttributeError):
        pass
    return None


def _parts(message: ChatMessage) -> tuple[str, list[dict[str, Any]]]:
    """One message as (role, parts); a tool result is a ``function_response`` in a user turn."""
    if message.role == "tool":
        if not message.name:
            return "user", [{"text": f"Tool result:\n{message.content}"}]
        try:
            response = json.loads(message.content)
        except ValueError:
            response = message.content
        if not isinstance(response, dict):  # the API wants an object
            response = {"result": response}
        return "user", [{"function_response": {"name": message.name, "response": response}}]
    parts: list[dict[str, Any]] = [{"file_data": {"file_uri": uri}} for uri in message.media]
    if message.content or not message.tool_calls:
        parts.append({"text": message.content})
    parts += [{"function_call": {"name": c.name, "args": c.args}} for c in message.tool_calls]
    return ("model" if message.role == "assistant" else "user"), parts


def _params(request: ProviderRequest) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            system.append(message.content)
            continue
        role, parts = _parts(message)
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"] += parts
        else:
            contents.append({"role": role, "parts": parts})
    config: dict[str, Any] = {
        "temperature": request.temperature,
        "max_output_tokens": request.max_tokens,
        "automatic_function_calling": {"disable": True},
    }
    if system:
        config["system_instruction"] = "\n\n".join(system)
    if request.reasoning:
        config["thinking_config"] = {"include_thoughts": True}
    if request.tools:
        config["tools"] = [
            {
                "function_declarations": [
                    {
                        "name": tool["name"],
                        "description": tool.get("description", ""),
                        "parameters_json_schema": tool.get("parameters")
                        or {"type": "object", "properties": {}},
                    }
                    for tool in request.tools
                ]
            }
        ]
    if request.trace_id:
        config["http_options"] = {"headers": {"x-trace-id": request.trace_id}}
    return contents, config


def _map_usage(meta: Any) -> Usage:
    """``usageMetadata`` (running counts in every chunk, the final ones in the last). A count the
    chunk leaves out is marked estimated, for the router to fill in."""
    thoughts = meta.thoughts_token_count or 0
    return Usage(
        input_tokens=meta.prompt_token_count or 0,
        # candidatesTokenCount leaves out the thoughts; output counts them, like the other wires.
        output_tokens=(meta.candidates_token_count or 0) + thoughts,
        cached_input_tokens=meta.cached_content_token_count or 0,
        reasoning_tokens=thoughts,
        input_estimated=meta.prompt_token_count is None,
        output_estimated=meta.candidates_token_count is None and meta.thoughts_token_count is None,
    )
