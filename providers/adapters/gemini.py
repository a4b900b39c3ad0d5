"""Google Gemini's ``streamGenerateContent`` SSE wire, sent through the ``google-genai`` SDK.

System messages become ``system_instruction``, assistant turns are role "model". With
``request.reasoning`` the request asks for thought summaries, which arrive as parts marked
``thought`` and become ``ReasoningDelta``. Tool calls are returned, never executed here.

The SDK builds the request and owns the connection pool; the SSE body is parsed here. The SDK's
streaming call turns every chunk into pydantic ``GenerateContentResponse`` objects (the larger
part of this adapter's CPU) and nests async generators around the HTTP response, which then
stays open until garbage collection when the stream is left early. So the request goes out the
way ``generate_content_stream`` sends it, piece by piece: the SDK's own converter
(``_GenerateContentParameters_to_mldev``) turns our dict contents and config into the wire's
camelCase body, its ``_build_request`` makes the URL (``…/v1beta/models/{model}:streamGenerateContent
?alt=sse``) and headers (``x-goog-api-key``, our extra headers), and its own async httpx2 client
(one pool per event loop, ``_common.POOL_LIMITS``) sends it. An error status becomes the SDK's
``errors.APIError`` through ``APIError.raise_for_async_response``, as in the SDK. We hold the
response and close it in ``finally``; the body is split by ``SseEvents`` and each event is read
with ``json.loads`` into plain dicts.

These SDK pieces are private (underscored) but are the ones the SDK's own streaming call is made
of; the SDK has no public way to send a request and hand back the raw response. The version is
pinned in requirements.txt, and the adapter tests check the URL, headers and body against the
emulator: run them when bumping it. What the SDK's call did and this one does not: no automatic
continuation (a ``CONTINUATION`` finish is reported as "length": the answer stopped before the
model finished), no automatic function calling (it was off here anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import Any

import httpx2
from google import genai
from google.genai import _common as sdk_common
from google.genai import errors, models, types

from providers.adapters._common import (
    HEALTH_TIMEOUT_S,
    POOL_LIMITS,
    Deadline,
    Deltas,
    SdkErrors,
    SseEvents,
    map_error,
    missing_key_error,
    parse_retry_after,
    status_error,
)
from providers.base import ChatMessage, Provider, ProviderConfig, ProviderError, ProviderRequest
from providers.events import ACCEPTED, Event, Finish, ToolCall, Usage

_FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "CONTINUATION": "length",  # the SDK would have asked for the rest; see the module docstring
    "SAFETY": "content-filter",
    "RECITATION": "content-filter",
    "BLOCKLIST": "content-filter",
    "PROHIBITED_CONTENT": "content-filter",
    "SPII": "content-filter",
    "IMAGE_SAFETY": "content-filter",
    "IMAGE_PROHIBITED_CONTENT": "content-filter",
}
_RETRY_DELAY = re.compile(r"^(\d+(?:\.\d+)?)s$")


class GeminiProvider(Provider):
    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._client: genai.Client | None = None
        if config.api_key:
            options: dict[str, Any] = {
                "api_version": "v1beta",
                "timeout": int(config.timeout_s * 1000),
                "async_client_args": {"limits": POOL_LIMITS},
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
        try:
            response = await deadline.run(self._send(self._client, request))
        except ProviderError:
            raise
        except Exception as err:
            raise self._map_error(err) from err

        finish: str | None = None
        called_tool = False
        # The latest usageMetadata (running counts, chunk by chunk), until it is passed on at the end.
        meta: dict[str, Any] | None = None
        input_passed_on = ACCEPTED.input_tokens
        # Parts that arrive together (one network read: under load they queue up) go on as one
        # event: one router step, one frame, one wake-up per subscriber instead of one per part.
        # Text and thinking are kept apart and in order: one of them is pending at a time.
        deltas = Deltas()
        events = SseEvents()
        try:
            yield ACCEPTED  # the vendor took the request: it bills it, whatever happens next
            received = response.aiter_bytes()
            while True:
                try:
                    data = await deadline.run(anext(received))
                except StopAsyncIteration:
                    break
                for payload in events.feed(data):
                    chunk = json.loads(payload)
                    if "error" in chunk:
                        raise self._stream_error(chunk["error"])
                    usage = chunk.get("usageMetadata")
                    if usage is not None:
                        meta = usage
                        prompt = usage.get("promptTokenCount") or 0
                        if prompt != input_passed_on:
                            # The prompt's count, once: later chunks only move the output's, which is
                            # passed on when the stream ends (however it ends), not chunk by chunk; until
                            # then the router counts the output it has seen (Stop ends it unannounced).
                            for event in deltas.flush():
                                yield event
                            input_passed_on = prompt
                            yield replace(_map_usage(usage), output_estimated=True)
                    candidates = chunk.get("candidates")
                    if not candidates:
                        feedback = chunk.get("promptFeedback")
                        if feedback and feedback.get("blockReason"):
                            finish = "content-filter"
                        continue
                    candidate = candidates[0]
                    for part in (candidate.get("content") or {}).get("parts") or ():
                        piece = part.get("text")
                        if piece:
                            deadline.has_content = True
                            before = deltas.thought(piece) if part.get("thought") else deltas.text(piece)
                            if before is not None:
                                yield before
                        elif (call := part.get("functionCall")) is not None:
                            deadline.has_content = True
                            called_tool = True
                            for event in deltas.flush():
                                yield event
                            name = call.get("name") or ""
                            yield ToolCall(
                                id=call.get("id") or f"call_{name}",
                                name=name,
                                args=dict(call.get("args") or {}),
                            )
                    reason = candidate.get("finishReason")
                    if reason:
                        finish = _FINISH_REASONS.get(reason, "other")
                # The read is used up: what it brought goes on before the next wait.
                for event in deltas.flush():
                    yield event
            if meta is not None:
                usage, meta = meta, None
                yield _map_usage(usage)
            if finish is None:
                where = "mid-event" if events.pending else "without a finishReason"
                raise ProviderError(
                    f"stream cut: the stream ended {where}", provider=self.config.name, retryable=True
                )
            yield Finish("tool-calls" if called_tool and finish == "stop" else finish)
        except ProviderError:
            for event in deltas.flush():  # what came before the break is the answer's
                yield event
            if meta is not None:
                yield _map_usage(meta)  # what the vendor reported before the stream broke
            raise
        except Exception as err:
            for event in deltas.flush():
                yield event
            if meta is not None:
                yield _map_usage(meta)
            raise self._map_error(err, streaming=deadline.has_content) from err
        finally:
            deadline.close()
            with contextlib.suppress(Exception):
                await response.aclose()

    async def _send(self, client: genai.Client, request: ProviderRequest) -> httpx2.Response:
        """The request as ``generate_content_stream`` sends it; the response (200) before its body.

        An error status raises the SDK's ``errors.APIError``, its body read, the response closed.
        """
        api = client._api_client
        contents, config = _params(request)
        # What the SDK's own streaming call does with its arguments (google/genai/models.py).
        parameters = types._GenerateContentParameters(
            model=request.model, contents=contents, config=types.GenerateContentConfig(**config)
        )
        body = models._GenerateContentParameters_to_mldev(api, parameters, None, parameters)
        path = "{model}:streamGenerateContent?alt=sse".format_map(body["_url"])
        body.pop("config", None)
        body = sdk_common.encode_unserializable_types(sdk_common.convert_to_dict(body))
        built = api._build_request("post", path, body)
        headers = built.headers
        if request.trace_id:
            headers["x-trace-id"] = request.trace_id
        http = api._async_httpx_client
        assert http is not None  # None only for Vertex AI on client certificates
        response = await http.send(
            http.build_request(
                "POST",
                built.url,
                content=json.dumps(built.data).encode(),
                headers=headers,
                timeout=built.timeout,
            ),
            stream=True,
        )
        try:
            await errors.APIError.raise_for_async_response(response)
        except BaseException:
            with contextlib.suppress(Exception):
                await response.aclose()
            raise
        return response

    def _stream_error(self, error: Any) -> ProviderError:
        """An error object inside a 200 stream (``data: {"error": ...}``)."""
        if isinstance(error, dict):
            message = " ".join(str(error[k]) for k in ("code", "status", "message") if error.get(k))
        else:
            message = str(error)
        return ProviderError(f"stream error: {message}", provider=self.config.name, retryable=True)

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

        # AttributeError/TypeError: an event that parses as JSON but not into what we expect.
        return SdkErrors(status=status, malformed=(ValueError, AttributeError, TypeError))


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
    return contents, config


def _map_usage(meta: dict[str, Any]) -> Usage:
    """``usageMetadata`` (running counts in every chunk, the final ones in the last). A count the
    chunk leaves out is marked estimated, for the router to fill in."""
    prompt = meta.get("promptTokenCount")
    candidates = meta.get("candidatesTokenCount")
    thoughts = meta.get("thoughtsTokenCount")
    return Usage(
        input_tokens=prompt or 0,
        # candidatesTokenCount leaves out the thoughts; output counts them, like the other wires.
        output_tokens=(candidates or 0) + (thoughts or 0),
        cached_input_tokens=meta.get("cachedContentTokenCount") or 0,
        reasoning_tokens=thoughts or 0,
        input_estimated=prompt is None,
        output_estimated=candidates is None and thoughts is None,
    )
