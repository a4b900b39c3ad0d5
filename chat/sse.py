"""The AI SDK *UI message stream* protocol: turn events in, Server-Sent Events bytes out.

The protocol (``x-vercel-ai-ui-message-stream: v1``) is what the AI SDK's
``DefaultChatTransport`` / ``useChat`` and ``readUIMessageStream`` parse: one JSON
object per ``data:`` line, ending with ``data: [DONE]``. For one answer we send::

    start {messageId, messageMetadata}   start-step
    reasoning-start / reasoning-delta… / reasoning-end      (reasoning models)
    text-start / text-delta… / text-end                     (the answer)
    data-provider-switch {fromProvider, toProvider, model, mode, reason[, discardTextId]}
    tool-input-start / tool-input-delta… / tool-input-available     (a model asks for a tool)
    tool-output-available | tool-output-error                       (the tool ran)
    data-tool-call {…} with id = toolCallId                  (the same call, as Chimera's data part)
    finish-step  start-step                                  (between the steps of a tool loop)
    source-document {sourceId, title, providerMetadata.chimera}     (useRAG / searchKnowledge sources)
    data-chart / data-code / data-error / …                  (the other ChimeraDataPart kinds)
    message-metadata {ChimeraMetadata + status}
    error {errorText}                                        (only when the answer failed)
    finish-step   finish {finishReason}   [DONE]

A provider switch in ``restart`` mode cannot delete text the client already shows
(the protocol has no such part), so the text part is ended, the switch part names it
in ``discardTextId``, and the new answer streams into a new text part: a client shows
only the text parts not discarded (the assembled message's last text part).

This is the hot path: each part is one ``json.dumps`` into bytes, and a batch of
queued events becomes one write (consecutive text deltas merged into one part).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from chat.events import StepFinished, TextSnapshot, TurnFinished
from chat.frames import Memo
from chat.schemas import ErrorPart, ProviderSwitchPart, SourcePart, ToolCallPart, dump_part
from providers.events import ReasoningDelta, TextDelta, ToolInputDelta

HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "x-vercel-ai-ui-message-stream": "v1",
}
CONTENT_TYPE = "text/event-stream"
DONE = b"data: [DONE]\n\n"
FINISH_REASONS = frozenset({"stop", "length", "content-filter", "tool-calls", "error", "other"})

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def part(obj: dict[str, Any]) -> bytes:
    """One SSE event carrying one protocol part."""
    return b"data: " + _dumps(obj).encode() + b"\n\n"


# A delta's frame, the per-token piece: encoded once for every watcher of the answer (chat.frames).
text_delta_frame = Memo(lambda part_id, delta: part({"type": "text-delta", "id": part_id, "delta": delta}))
reasoning_delta_frame = Memo(
    lambda part_id, delta: part({"type": "reasoning-delta", "id": part_id, "delta": delta})
)


def finish_reason(reason: str | None, status: str, error: bool) -> str:
    if error:
        return "error"
    if reason == "tool":
        return "tool-calls"
    if reason in FINISH_REASONS:
        return reason
    return "stop" if status == "complete" else "other"


class UIMessageStreamEncoder:
    """Encodes one assistant message's events; keeps which text/reasoning part is open."""

    __slots__ = ("_n", "_reasoning_id", "_sent", "_text_id", "_tools", "finished", "message_id")

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self._text_id: str | None = None
        self._reasoning_id: str | None = None
        self._n = 0
        self._sent: list[str] = []  # the text the client has (since the last restart)
        self._tools: dict[str, str] = {}  # tool call id -> what the client has of it: "started" / "input"
        self.finished = False

    # ---- parts around the answer ---------------------------------------------------
    def start(self, metadata: dict[str, Any] | None = None) -> bytes:
        head: dict[str, Any] = {"type": "start", "messageId": self.message_id}
        if metadata:
            head["messageMetadata"] = metadata
        return part(head) + part({"type": "start-step"})

    def _next_id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self._n}"

    def _close_text(self, out: list[bytes]) -> str | None:
        text_id = self._text_id
        if text_id is not None:
            out.append(part({"type": "text-end", "id": text_id}))
            self._text_id = None
        return text_id

    def _close_reasoning(self, out: list[bytes]) -> None:
        if self._reasoning_id is not None:
            out.append(part({"type": "reasoning-end", "id": self._reasoning_id}))
            self._reasoning_id = None

    def text(self, delta: str, out: list[bytes]) -> None:
        if self._text_id is None:
            self._close_reasoning(out)
            self._text_id = self._next_id("text")
            out.append(part({"type": "text-start", "id": self._text_id}))
        out.append(text_delta_frame(self._text_id, delta))
        self._sent.append(delta)

    def reasoning(self, delta: str, out: list[bytes]) -> None:
        if self._reasoning_id is None:
            self._close_text(out)
            self._reasoning_id = self._next_id("reasoning")
            out.append(part({"type": "reasoning-start", "id": self._reasoning_id}))
        out.append(reasoning_delta_frame(self._reasoning_id, delta))

    def data(self, name: str, data: dict[str, Any], out: list[bytes], part_id: str | None = None) -> None:
        obj: dict[str, Any] = {"type": f"data-{name}", "data": data}
        if part_id:
            obj["id"] = part_id
        out.append(part(obj))

    # ---- tools, sources, steps ------------------------------------------------------
    def _tool_started(self, call_id: str, name: str, out: list[bytes]) -> None:
        if call_id not in self._tools:
            self._close_reasoning(out)
            self._close_text(out)
            self._tools[call_id] = "started"
            out.append(part({"type": "tool-input-start", "toolCallId": call_id, "toolName": name}))

    def tool_input_delta(self, call_id: str, name: str, text: str, out: list[bytes]) -> None:
        """The model is writing a call's arguments."""
        self._tool_started(call_id, name, out)
        out.append(part({"type": "tool-input-delta", "toolCallId": call_id, "inputTextDelta": text}))

    def tool_call(self, call: dict[str, Any], out: list[bytes]) -> None:
        """A call's state (a stored ``tool-call`` part): the AI SDK's tool parts for what the client
        lacks, then the ``data-tool-call`` part (same id, so a client keeps only the newest)."""
        call_id = str(call.get("toolCallId") or "")
        name = str(call.get("toolName") or "")
        status = call.get("status")
        if call_id:
            self._tool_started(call_id, name, out)
            if self._tools[call_id] != "input":
                self._tools[call_id] = "input"
                out.append(
                    part(
                        {
                            "type": "tool-input-available",
                            "toolCallId": call_id,
                            "toolName": name,
                            "input": call.get("args"),
                        }
                    )
                )
            if status == "success":
                out.append(
                    part(
                        {"type": "tool-output-available", "toolCallId": call_id, "output": call.get("result")}
                    )
                )
            elif status == "error":
                error = str(call.get("error") or "The tool failed.")
                out.append(part({"type": "tool-output-error", "toolCallId": call_id, "errorText": error}))
        self.data("tool-call", {k: v for k, v in call.items() if k != "type"}, out, part_id=call_id or None)

    def source(self, source: dict[str, Any], out: list[bytes]) -> None:
        """A cited passage, as the AI SDK's own ``source-document`` part (its link and excerpt in
        ``providerMetadata.chimera``)."""
        extra = {k: source[k] for k in ("url", "excerpt") if source.get(k)}
        obj: dict[str, Any] = {
            "type": "source-document",
            "sourceId": str(source.get("sourceId", "")),
            "mediaType": str(source.get("mediaType") or "text/plain"),
            "title": str(source.get("title", "")),
        }
        if extra:
            obj["providerMetadata"] = {"chimera": extra}
        out.append(part(obj))

    def next_step(self, out: list[bytes]) -> None:
        """One provider call is over (its tools ran): the next one is a new step."""
        self._close_reasoning(out)
        self._close_text(out)
        out.append(part({"type": "finish-step"}))
        out.append(part({"type": "start-step"}))

    def switch(self, data: dict[str, Any], out: list[bytes]) -> None:
        """A provider switch; in ``restart`` mode the text so far is to be replaced."""
        if data.get("mode") == "restart":
            self._close_reasoning(out)
            discarded = self._close_text(out)
            self._sent.clear()
            if discarded:
                data = {**data, "discardTextId": discarded}
        self.data("provider-switch", data, out)

    def error(self, message: str, retryable: bool, provider: str | None, out: list[bytes]) -> None:
        self._close_reasoning(out)
        self._close_text(out)
        self.data("error", {"error": message, "retryable": retryable, "provider": provider}, out)

    def finish(
        self,
        metadata: dict[str, Any],
        status: str,
        out: list[bytes],
        error_text: str = "",
        reason: str | None = None,
    ) -> None:
        self._close_reasoning(out)
        self._close_text(out)
        out.append(part({"type": "message-metadata", "messageMetadata": metadata}))
        failed = bool(error_text) and status in ("error", "incomplete") and error_text != "Stopped."
        if failed:
            out.append(part({"type": "error", "errorText": error_text}))
        out.append(part({"type": "finish-step"}))
        out.append(part({"type": "finish", "finishReason": finish_reason(reason, status, failed)}))
        out.append(DONE)
        self.finished = True

    # ---- turn events -------------------------------------------------------------
    def encode(self, events: Iterable[Any]) -> bytes:
        """A batch of watch events (``chat.watch``) as one write. Unknown kinds are skipped."""
        out: list[bytes] = []
        pending: list[str] = []  # consecutive text deltas, merged into one part
        for event in events:
            tp = type(event)
            if tp is TextDelta:
                pending.append(event.text)
                continue
            if pending:
                self.text("".join(pending), out)
                pending = []
            if tp is ReasoningDelta:
                self.reasoning(event.text, out)
            elif tp is TextSnapshot:
                self.snapshot(event.text, out)
            elif tp is ProviderSwitchPart:
                self.switch(event.model_dump(exclude={"type"}), out)
            elif tp is ToolInputDelta:
                self.tool_input_delta(event.id, event.name, event.text, out)
            elif tp is ToolCallPart:
                self.tool_call(dump_part(event), out)
            elif tp is SourcePart:
                self.source(dump_part(event), out)
            elif tp is StepFinished:
                self.next_step(out)
            elif tp is ErrorPart:
                self.error(event.error, event.retryable, event.provider, out)
            elif tp is TurnFinished:
                self.turn_finished(event, out)
                break
            elif isinstance(event, BaseModel):
                kind = getattr(event, "type", None)
                if isinstance(kind, str):
                    self.data(kind, _data(event), out)  # any other ChimeraDataPart
        if pending:
            self.text("".join(pending), out)
        return b"".join(out)

    def snapshot(self, text: str, out: list[bytes]) -> None:
        """The whole text so far: only what the client lacks, or (it restarted) all of it anew."""
        sent = "".join(self._sent)
        if not text.startswith(sent):
            self.switch({"mode": "restart", "reason": "the answer restarted"}, out)
            sent = ""
        if len(text) > len(sent):
            self.text(text[len(sent) :], out)

    def turn_finished(self, event: TurnFinished, out: list[bytes]) -> None:
        """The end; for an answer not watched live, first what the client has not had of it."""
        parts = event.data_parts
        if not event.live:
            thinking = "".join(p.get("content", "") for p in parts if p.get("type") == "thinking")
            if thinking and not self._sent:
                self.reasoning(thinking, out)
            self.snapshot(event.content, out)
            for data_part in parts:
                kind = data_part.get("type")
                if not isinstance(kind, str) or kind in ("thinking", "error"):
                    continue
                if kind == "tool-call":
                    self.tool_call(data_part, out)
                elif kind == "source-document":
                    self.source(data_part, out)
                else:
                    self.data(kind, {k: v for k, v in data_part.items() if k != "type"}, out)
            error = next((p for p in parts if p.get("type") == "error"), None)
            if error is not None:
                self.error(error.get("error", ""), bool(error.get("retryable")), error.get("provider"), out)
        metadata = {**event.metadata, "status": event.status}
        self.finish(metadata, event.status, out, event.error, event.metadata.get("finishReason"))


def _data(part: BaseModel) -> dict[str, Any]:
    return {k: v for k, v in dump_part(part).items() if k != "type"}
