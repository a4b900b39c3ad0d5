"""Typed shapes of what messages carry: ChimeraMetadata and the ChimeraDataPart kinds.

The spec's TypeScript ``ChimeraUIMessage`` becomes ``Message`` rows whose
``metadata`` and ``data_parts`` JSON validate against these pydantic models.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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
    type: Literal["tool-call"] = "tool-call"
    toolName: str
    args: Any = None
    status: Literal["pending", "success", "error"] = "pending"


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
    | ProviderSwitchPart,
    Field(discriminator="type"),
]


class DataParts(BaseModel):
    parts: list[ChimeraDataPart]


def validate_data_parts(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p.model_dump(mode="json", exclude_none=True) for p in DataParts(parts=parts).parts]
