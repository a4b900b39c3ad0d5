"""The spec's types: ChimeraMetadata and the ChimeraDataPart kinds.

The spec's TypeScript ``ChimeraUIMessage`` becomes ``Message`` rows whose ``metadata`` and
``data_parts`` are these pydantic models dumped to JSON. They are the types end to end: the turn
builds them (``chat.turns``), the store saves their JSON, both transports encode them (the page as
HTML, the API as ``data-<type>`` parts), and incoming ``dataParts`` are validated against them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator


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


# Bounds on one chart: enough for a 90-day report or a query result, small enough to draw at once.
MAX_CHART_SERIES = 12
MAX_CHART_POINTS = 2000  # per series
_Number = Annotated[float, Field(allow_inf_nan=False)]
_Label = Annotated[str, Field(max_length=200)]


class ChartSeries(BaseModel):
    """One named series: ``values`` (one per label) for line/bar/pie, ``points`` for scatter."""

    model_config = ConfigDict(extra="forbid")

    name: _Label = ""
    values: list[_Number | None] | None = Field(default=None, max_length=MAX_CHART_POINTS)
    points: list[tuple[_Number, _Number]] | None = Field(default=None, max_length=MAX_CHART_POINTS)


class ChartData(BaseModel):
    """A chart's numbers. See ``ChartPart`` for the shape per chart type."""

    model_config = ConfigDict(extra="forbid")

    labels: list[_Label] = Field(default_factory=list, max_length=MAX_CHART_POINTS)
    series: list[ChartSeries] = Field(min_length=1, max_length=MAX_CHART_SERIES)
    title: _Label | None = None
    xLabel: _Label | None = None  # axis titles (line, bar, scatter)
    yLabel: _Label | None = None


class ChartPart(BaseModel):
    """A chart drawn with the answer (the page draws it with Chart.js and a table of the same numbers).

    ``data`` has one simple shape::

        line, bar, pie: {"labels": ["Mon", "Tue"], "series": [{"name": "Cost", "values": [1.5, 2]}]}
        scatter:        {"series": [{"name": "groq", "points": [[x, y], ...]}]}

    plus optional ``title``, ``xLabel`` and ``yLabel``. Each series of a line/bar/pie chart has one
    value per label (``null`` for a gap in line/bar); a pie has exactly one series of values >= 0.
    At most 12 series of 2000 values or points; numbers are finite.
    """

    type: Literal["chart"] = "chart"
    data: ChartData
    chartType: Literal["line", "bar", "pie", "scatter"]

    @model_validator(mode="after")
    def _shape_fits_the_chart_type(self) -> ChartPart:
        data = self.data
        if self.chartType == "scatter":
            for s in data.series:
                if s.points is None or s.values is not None:
                    raise ValueError("each series of a scatter chart has points [[x, y], ...], not values")
            return self
        if not data.labels:
            raise ValueError(f"a {self.chartType} chart needs labels")
        for s in data.series:
            if s.values is None or s.points is not None:
                raise ValueError(f"each series of a {self.chartType} chart has values, not points")
            if len(s.values) != len(data.labels):
                raise ValueError(
                    f"series {s.name!r} has {len(s.values)} values for {len(data.labels)} labels"
                )
        if self.chartType == "pie":
            if len(data.series) != 1:
                raise ValueError("a pie chart has exactly one series")
            if any(v is None or v < 0 for v in data.series[0].values or []):
                raise ValueError("a pie chart's values are numbers >= 0")
        return self


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
