"""The normalised events every adapter and the router yield.

Adapters turn each vendor's stream into these few frozen dataclasses; nothing
vendor-specific crosses this line. The router adds ``ProviderSwitched``,
``AttemptFinished`` and ``StreamError``; transports render all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str
    kind: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str
    kind: Literal["reasoning"] = "reasoning"


@dataclass(frozen=True, slots=True)
class ToolInputDelta:
    """A piece of a tool call's JSON arguments as the model writes them (before its ``ToolCall``)."""

    id: str
    name: str
    text: str
    kind: Literal["tool-input-delta"] = "tool-input-delta"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call: its id, the tool's name, and the parsed arguments."""

    id: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    kind: Literal["tool-call"] = "tool-call"


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one attempt, cumulative.

    An adapter yields one as soon as the vendor has accepted the request (an attempt that got that
    far is billed), and again whenever the vendor reports counts, so whatever ends the stream (a
    cut, an error, a timeout, Stop) the router holds what the vendor said so far. A count the
    vendor has not (yet) reported is marked estimated (``input_estimated``/``output_estimated``);
    the router replaces such counts with its own estimate of what was sent and produced, and the
    marks go on to the usage row.

    ``input_tokens`` includes ``cached_input_tokens`` (cache reads) and ``cache_write_tokens``
    (prompt-cache writes, priced apart by some vendors); ``output_tokens`` includes
    ``reasoning_tokens``.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    input_estimated: bool = False
    output_estimated: bool = False
    kind: Literal["usage"] = "usage"

    @property
    def estimated(self) -> bool:
        return self.input_estimated or self.output_estimated


# An adapter's first Usage: the vendor accepted the request and has reported nothing yet.
ACCEPTED = Usage(input_estimated=True, output_estimated=True)


@dataclass(frozen=True, slots=True)
class Finish:
    # "stop", "length", "tool-calls", "content-filter", "other"
    reason: str = "stop"
    kind: Literal["finish"] = "finish"


@dataclass(frozen=True, slots=True)
class ProviderSwitched:
    """The router moved to the next provider after content had reached the client.

    ``mode`` is "continue" when the new provider continues the partial text, or
    "restart" when the client must replace the text shown so far.
    """

    from_provider: str
    to_provider: str
    model: str
    mode: Literal["continue", "restart"] = "continue"
    reason: str = ""
    kind: Literal["provider-switched"] = "provider-switched"


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    provider: str
    model: str
    attempt: int
    # A cache hit says so first (with the stored answer's usage), before its text is replayed.
    cache_hit: bool = False
    usage: Usage | None = None
    kind: Literal["attempt-started"] = "attempt-started"


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    """One provider attempt is over (success or failure); one usage row each."""

    provider: str
    model: str
    usage: Usage
    latency_ms: int
    ttft_ms: int | None
    error: str = ""
    status: int | None = None
    cache_hit: bool = False
    kind: Literal["attempt-finished"] = "attempt-finished"


@dataclass(frozen=True, slots=True)
class StreamError:
    """Terminal: every route failed. The partial text (if any) must be kept."""

    message: str
    retryable: bool = True
    provider: str | None = None
    status: int | None = None
    kind: Literal["error"] = "error"


Event = (
    TextDelta
    | ReasoningDelta
    | ToolInputDelta
    | ToolCall
    | Usage
    | Finish
    | ProviderSwitched
    | AttemptStarted
    | AttemptFinished
    | StreamError
)
