"""What a turn publishes to those watching it, besides the provider's text and reasoning deltas.

The stream a watcher sees (``chat.watch``) is made of:

- ``providers.events.TextDelta`` / ``ReasoningDelta``: the answer as it is written (the hot path);
- ``providers.events.ToolInputDelta``: a tool call's arguments as the model writes them;
- the spec's data parts (``chat.schemas``): ``ProviderSwitchPart``, ``ToolCallPart`` (each status
  change of a call: pending, running, success/error), ``ErrorPart``, and the parts a tool produced
  (charts, tables, code, sources);
- ``StepFinished``: a provider call and its tool calls are over, the next call starts;
- ``TextSnapshot``: the whole text so far, replacing what the viewer shows (re-attaching, or
  following an answer another process writes);
- ``TurnFinished``: always last, once the answer is saved.

Transports only encode these (``chat.render.PageEncoder``: HTML fragments; ``chat.sse``: the AI SDK
UI message stream).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TextSnapshot:
    """The answer's text so far: it replaces whatever text the viewer shows."""

    text: str
    kind: str = "text-snapshot"


@dataclass(frozen=True, slots=True)
class StepFinished:
    """One provider call of the answer is over and its tool calls have run; the next step starts."""

    step: int
    kind: str = "step-finished"


@dataclass(frozen=True, slots=True)
class Siblings:
    """An answer's place among the answers to the same message (1-based), for branch navigation."""

    index: int = 1
    count: int = 1
    prev: Any = None
    next: Any = None


@dataclass(frozen=True, slots=True)
class TurnFinished:
    """The last event of every turn, published after the message row is final.

    ``live`` is True when the watcher saw the turn's events as they happened; False when it
    followed another process's checkpoints or attached to a stored answer, in which case the
    data parts and the text's tail were not streamed and the encoder sends them now.
    """

    message_id: str
    conversation_id: str
    status: str
    content: str
    metadata: dict[str, Any]  # ChimeraMetadata, as stored (JSON)
    data_parts: list[dict[str, Any]] = field(default_factory=list)  # ChimeraDataPart dicts, as stored
    error: str = ""
    siblings: Siblings = field(default_factory=Siblings)
    is_edited: bool = False
    live: bool = True
    gone: bool = False  # the answer was deleted while someone watched it
    kind: str = "turn-finished"

    @property
    def retryable(self) -> bool:
        return next((bool(p.get("retryable")) for p in self.data_parts if p.get("type") == "error"), True)
