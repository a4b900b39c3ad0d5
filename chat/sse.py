"""The AI SDK *UI message stream* protocol: turn events in, Server-Sent Events bytes out.

The protocol (``x-vercel-ai-ui-message-stream: v1``) is what the AI SDK's
``DefaultChatTransport`` / ``useChat`` and ``readUIMessageStream`` parse: one JSON
object per ``data:`` line, ending with ``data: [DONE]``. For one answer we send::

    start {messageId, messageMetadata}   start-step
    reasoning-start / reasoning-delta… / reasoning-end      (reasoning models)
    text-start / text-delta… / text-end                     (the answer)
    data-provider-switch {fromProvider, toProvider, model, mode, reason[, discardTextId]}
    data-tool-call / data-error / …                         (ChimeraDataPart kinds)
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

    __slots__ = ("_n", "_reasoning_id", "_text_id", "finished", "message_id")

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self._text_id: str | None = None
        self._reasoning_id: str | None = None
        self._n = 0
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
        out.append(part({"type": "text-delta", "id": self._text_id, "delta": delta}))

    def reasoning(self, delta: str, out: list[bytes]) -> None:
        if self._reasoning_id is None:
            self._close_text(out)
            self._reasoning_id = self._next_id("reasoning")
            out.append(part({"type": "reasoning-start", "id": self._reasoning_id}))
        out.append(part({"type": "reasoning-delta", "id": self._reasoning_id, "delta": delta}))

    def data(self, name: str, data: dict[str, Any], out: list[bytes], part_id: str | None = None) -> None:
        obj: dict[str, Any] = {"type": f"data-{name}", "data": data}
        if part_id:
            obj["id"] = part_id
        out.append(part(obj))

    def switch(self, data: dict[str, Any], out: list[bytes]) -> None:
        """A provider switch; in ``restart`` mode the text so far is to be replaced."""
        if data.get("mode") == "restart":
            self._close_reasoning(out)
            discarded = self._close_text(out)
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
    def encode(self, events: Iterable[Any], extra_metadata: dict[str, Any] | None = None) -> bytes:
        """A batch of turn events (``chat.turns``) as one write. Unknown kinds are skipped."""
        out: list[bytes] = []
        pending: list[str] = []  # consecutive text deltas, merged into one part
        for event in events:
            kind = event.kind
            if kind == "text":
                pending.append(event.text)
                continue
            if pending:
                self.text("".join(pending), out)
                pending = []
            if kind == "reasoning":
                self.reasoning(event.text, out)
            elif kind == "provider-switched":
                self.switch(
                    {
                        "fromProvider": event.from_provider,
                        "toProvider": event.to_provider,
                        "model": event.model,
                        "mode": event.mode,
                        "reason": event.reason,
                    },
                    out,
                )
            elif kind == "tool-call":
                self.data(
                    "tool-call",
                    {"toolCallId": event.id, "toolName": event.name, "args": event.args, "status": "pending"},
                    out,
                    part_id=event.id,
                )
            elif kind == "error":
                self.error(event.message, event.retryable, event.provider, out)
            elif kind == "turn-finished":
                metadata = {**event.metadata, "status": event.status}
                if extra_metadata:
                    metadata.update(extra_metadata)
                self.finish(metadata, event.status, out, event.error, event.metadata.get("finishReason"))
                break
        if pending:
            self.text("".join(pending), out)
        return b"".join(out)

    def replay_message(self, message: Any, already_sent: str = "") -> bytes:
        """A stored (finished) message as the rest of a stream: all of it, or what follows
        ``already_sent`` (the text a client following the checkpoints has)."""
        out: list[bytes] = []
        parts = message.data_parts or []
        thinking = "".join(p.get("content", "") for p in parts if p.get("type") == "thinking")
        if thinking and not already_sent:
            self.reasoning(thinking, out)
        content = message.content or ""
        if already_sent and not content.startswith(already_sent):
            self.switch({"mode": "restart", "reason": "the answer restarted"}, out)
            already_sent = ""
        if len(content) > len(already_sent):
            self.text(content[len(already_sent) :], out)
        for data_part in parts:
            kind = data_part.get("type")
            if kind in ("thinking", "error"):
                continue
            self.data(kind, {k: v for k, v in data_part.items() if k != "type"}, out)
        error_text = next((p.get("error", "") for p in parts if p.get("type") == "error"), "")
        if error_text:
            error = next(p for p in parts if p.get("type") == "error")
            self.error(error_text, bool(error.get("retryable")), error.get("provider"), out)
        metadata = {**(message.metadata or {}), "status": message.status}
        self.finish(metadata, message.status, out, error_text, (message.metadata or {}).get("finishReason"))
        return b"".join(out)
