"""The spec's types: ChimeraMetadata and the ChimeraDataPart kinds.

The spec's TypeScript ``ChimeraUIMessage`` becomes ``Message`` rows whose ``metadata`` and
``data_parts`` are these pydantic models dumped to JSON. They are the types end to end: the turn
builds them (``chat.turns``), the store saves their JSON, both transports encode them (the page as
HTML, the API as ``data-<type>`` parts), and incoming ``dataParts`` are validated against them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class ChimeraMetadata(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    timestamp: str
    modelUsed: str
    provider: str  # groq | google | anthropic | gateway | local
    tokenCount: int | None = None
    inputTokens: int | None = None
    outputTokens: int | None = None
    reasoningTokens: int | None = None
    cost: Decimal | None = None  # USD, Decimal end to end; serialised as a string
    latency: int | None = None  # ms, whole turn
    ttft: int | None = None  # ms to the first token
    traceId: str
    sessionId: str
    gatewayCache: Literal["hit", "miss"] | None = None
    tier: str | None = None
    switches: list[dict[str, Any]] = Field(default_factory=list)
    finishReason: str | None = None


class ThinkingPart(BaseModel):
    type: Literal["thinking"] = "thinking"
    content: str
    duration: int | None = None


class ErrorPart(BaseModel):
    type: Literal["error"] = "error"
    error: str
    retryable: bool
    provider: str | None = None


class ToolCallPart(BaseModel):
    """A tool the model called, and how it went (Chimera adds the id, ``running``, result and timing)."""

    type: Literal["tool-call"] = "tool-call"
    toolCallId: str | None = None  # the provider's id for the call
    toolName: str
    args: Any = None
    status: Literal["pending", "running", "success", "error"] = "pending"
    result: Any = None  # what the model was given back (success)
    error: str | None = None  # why it failed, in plain words (error)
    durationMs: int | None = None
    step: int | None = None  # which provider call of the answer asked for it (1-based)


class ComponentPart(BaseModel):
    type: Literal["component"] = "component"
    component: str
    props: Any = None


class ChartPart(BaseModel):
    type: Literal["chart"] = "chart"
    data: Any = None
    chartType: Literal["line", "bar", "pie", "scatter"]


class MarkdownPart(BaseModel):
    type: Literal["markdown"] = "markdown"
    content: str
    enhanced: bool = False


class CodePart(BaseModel):
    type: Literal["code"] = "code"
    language: str
    code: str
    executable: bool | None = None


class MediaPart(BaseModel):
    type: Literal["media"] = "media"
    mediaType: Literal["image", "video", "audio"]
    url: str
    metadata: Any = None


class SourcePart(BaseModel):
    """A passage an answer drew on (useRAG, searchKnowledge): the page numbers them as citations.
    Sent to AI SDK clients as their own ``source-document`` part."""

    type: Literal["source-document"] = "source-document"
    sourceId: str
    title: str
    mediaType: str = "text/plain"
    url: str | None = None  # where the passage is (a knowledge document or a message)
    excerpt: str | None = None


class ProviderSwitchPart(BaseModel):
    """Chimera's own addition: the answer moved to another provider mid-stream."""

    type: Literal["provider-switch"] = "provider-switch"
    fromProvider: str
    toProvider: str
    model: str
    mode: Literal["continue", "restart"]
    reason: str = ""


ChimeraDataPart = Annotated[
    ThinkingPart
    | ErrorPart
    | ToolCallPart
    | ComponentPart
    | ChartPart
    | MarkdownPart
    | CodePart
    | MediaPart
    | SourcePart
    | ProviderSwitchPart,
    Field(discriminator="type"),
]


_parts = TypeAdapter(list[ChimeraDataPart])


def dump_part(part: BaseModel) -> dict[str, Any]:
    """A data part as stored and sent: JSON, absent fields left out."""
    return part.model_dump(mode="json", exclude_none=True)


def validate_data_parts(parts: list[Any]) -> list[dict[str, Any]]:
    """Incoming data parts checked against the spec's kinds (pydantic ValidationError if not)."""
    return [dump_part(p) for p in _parts.validate_python(parts)]
