"""The ``generateReport`` tool: a summary and charts over the asking user's own data.

Subjects: ``usage`` (usage rows: tokens and cost per day, by model and provider, latency),
``conversations`` (messages per day by role, the most active conversations), and ``query`` (a
table the model already has, e.g. from ``queryDatabase``, passed in as ``columns`` and ``rows``).
Every database read is filtered by ``ctx.user_id``: a report never counts anyone else's rows.

The model reads a short Markdown summary with the key numbers (money as Decimal, to the cent); the
answer shows the same summary as a ``MarkdownPart`` and the numbers as ``ChartPart``s in the shape
``chat.schemas.ChartPart`` documents. An empty range gives a report that says so, and no charts.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal

from django.db.models import Avg, Count, DateTimeField, Q, Sum
from django.db.models.functions import Trunc
from django.utils import timezone
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from chat import db
from chat.models import Conversation, Message
from chat.schemas import MAX_CHART_POINTS, MAX_CHART_SERIES, ChartPart, MarkdownPart
from tools.base import Tool, ToolContext, ToolResult
from usage.models import UsageMetric

RANGES: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
RANGE_WORDS = {"24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days", "90d": "last 90 days"}
MAX_QUERY_ROWS = 1000
MAX_QUERY_COLUMNS = 20
MAX_BAR_LABELS = 12  # models or conversations in a bar chart; the rest are summed as "other"
CENT = Decimal("0.01")

MAX_CELL_CHARS = 1000
MAX_CELL_NUMBER = 2**63


def _cell(value: Any) -> Any:
    """One table value: text, a finite number, true/false or null, within bounds."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > MAX_CELL_NUMBER:
            raise ValueError(f"numbers must be finite and at most {MAX_CELL_NUMBER:.3g} in size")
        return value
    if isinstance(value, str):
        if len(value) > MAX_CELL_CHARS:
            raise ValueError(f"text values are at most {MAX_CELL_CHARS} characters")
        return value
    raise ValueError("each value is text, a number, true/false or null")


Cell = Annotated[
    Any,
    AfterValidator(_cell),
    WithJsonSchema({"type": ["string", "number", "boolean", "null"]}),
]


class ReportArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: Literal["usage", "conversations", "query"] = Field(
        description="usage: your tokens and cost; conversations: your messages; "
        "query: chart a table you already have (give columns and rows)."
    )
    range: Literal["24h", "7d", "30d", "90d"] = Field(
        "7d", description="The period up to now (usage and conversations)."
    )
    columns: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        None, max_length=MAX_QUERY_COLUMNS, description="Column names of the table (subject query only)."
    )
    rows: list[list[Cell]] | None = Field(
        None,
        max_length=MAX_QUERY_ROWS,
        description="The table's rows, one value per column (subject query only).",
    )

    @model_validator(mode="after")
    def _table_only_for_query(self) -> ReportArgs:
        if self.subject != "query":
            if self.rows is not None or self.columns is not None:
                raise ValueError("columns and rows are only for subject 'query'")
            return self
        if not self.columns or self.rows is None:
            raise ValueError("subject 'query' needs columns and rows")
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"row {i} has {len(row)} values for {len(self.columns)} columns")
        return self


# ---- formatting -------------------------------------------------------------------------------
def money(amount: Decimal) -> str:
    """Dollars to the cent; a positive amount under half a cent says so rather than "$0.00"."""
    if Decimal(0) < amount < Decimal("0.005"):
        return "under $0.01"
    return f"${amount.quantize(CENT, rounding=ROUND_HALF_UP):,}"


def count(n: int | float) -> str:
    return f"{n:,}" if isinstance(n, int) else f"{n:,.2f}".rstrip("0").rstrip(".")


@dataclass
class Report:
    summary: str
    charts: list[ChartPart] = field(default_factory=list)

    def result(self) -> ToolResult:
        return ToolResult(output=self.summary, parts=(MarkdownPart(content=self.summary), *self.charts))


def _chart(chart_type: str, **data: Any) -> ChartPart:
    return ChartPart.model_validate({"chartType": chart_type, "data": data})


# ---- time buckets -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    range: str

    @property
    def hourly(self) -> bool:
        return self.range == "24h"

    @property
    def unit(self) -> str:
        return "hour" if self.hourly else "day"

    @property
    def days(self) -> int:
        return max(1, RANGES[self.range].days)

    def buckets(self) -> list[datetime]:
        """Every hour (24h) or day (UTC) from ``since`` to ``until``, empty ones included."""
        step = timedelta(hours=1) if self.hourly else timedelta(days=1)
        start = self.since.replace(minute=0, second=0, microsecond=0)
        if not self.hourly:
            start = start.replace(hour=0)
        out = []
        while start <= self.until:
            out.append(start)
            start += step
        return out

    def label(self, bucket: datetime) -> str:
        return bucket.strftime("%m-%d %H:00" if self.hourly else "%Y-%m-%d")

    @property
    def axis(self) -> str:
        return "Hour (UTC)" if self.hourly else "Day (UTC)"

    def trunc(self, column: str) -> Trunc:
        return Trunc(column, self.unit, output_field=DateTimeField(), tzinfo=UTC)

    @property
    def heading(self) -> str:
        return f"{RANGE_WORDS[self.range]} ({self.since:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M} UTC)"


def _per_bucket(window: Window, rows: dict[datetime, Any], default: Any) -> list[Any]:
    return [rows.get(b, default) for b in window.buckets()]


def _bucket_key(value: datetime) -> datetime:
    # SQLite hands back naive datetimes in UTC, Postgres aware ones.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ---- usage ------------------------------------------------------------------------------------
def usage_report(user_id: Any, window: Window) -> Report:
    """Tokens, cost and latency of the user's usage rows in the window (sync: runs on the DB pool)."""
    rows = UsageMetric.objects.filter(
        user_id=user_id, created_at__gte=window.since, created_at__lte=window.until
    )
    totals = rows.aggregate(
        n=Count("id"),
        input=Sum("input_tokens"),
        output=Sum("output_tokens"),
        cost=Sum("cost_usd"),
        failed=Count("id", filter=~Q(error="")),
        cached=Count("id", filter=Q(cache_hit=True)),
        unpriced=Count("id", filter=Q(cost_usd=None, cache_hit=False)),
        latency=Avg("latency_ms", filter=Q(error="")),
    )
    n = totals["n"]
    title = f"**Your usage, {window.heading}**"
    if not n:
        return Report(f"{title}\n\nNothing to report: there is no usage in the {RANGE_WORDS[window.range]}.")
    tokens_in, tokens_out = totals["input"] or 0, totals["output"] or 0
    cost: Decimal = totals["cost"] or Decimal(0)

    by_model = list(
        rows.values("provider", "model")
        .annotate(n=Count("id"), input=Sum("input_tokens"), output=Sum("output_tokens"), cost=Sum("cost_usd"))
        .order_by("-n", "provider", "model")
    )
    # Most used: most requests, then most tokens, then by name (a stable answer for ties).
    top = min(
        by_model,
        key=lambda r: (-r["n"], -((r["input"] or 0) + (r["output"] or 0)), r["provider"], r["model"]),
    )
    by_provider = list(
        rows.values("provider").annotate(cost=Sum("cost_usd"), n=Count("id")).order_by("provider")
    )
    per_bucket = {
        _bucket_key(r["bucket"]): r["cost"] or Decimal(0)
        for r in rows.annotate(bucket=window.trunc("created_at"))
        .values("bucket")
        .annotate(cost=Sum("cost_usd"))
    }

    notes = [f"{count(totals['failed'])} failed"] if totals["failed"] else []
    if totals["cached"]:
        notes.append(f"{count(totals['cached'])} answered from the cache")
    lines = [
        title,
        "",
        f"- Requests: {count(n)}" + (f" ({', '.join(notes)})" if notes else ""),
        f"- Tokens: {count(tokens_in + tokens_out)} ({count(tokens_in)} in, {count(tokens_out)} out)",
        f"- Cost: {money(cost)} in total; on average {money(cost / n)} per request"
        f" and {money(cost / window.days)} per day",
    ]
    if totals["latency"] is not None:
        lines.append(f"- Average latency: {count(round(totals['latency']))} ms")
    top_tokens = (top["input"] or 0) + (top["output"] or 0)
    lines.append(
        f"- Most used model: {top['provider']}/{top['model']} ({count(top['n'])} requests, "
        f"{count(top_tokens)} tokens, {money(top['cost'] or Decimal(0))})"
    )
    if totals["unpriced"]:
        lines.append(
            f"- {count(totals['unpriced'])} requests have no price yet (their model is not priced in the "
            "catalog), so the cost above leaves them out."
        )

    charts = [
        _chart(
            "line",
            title=f"Cost per {window.unit} (USD)",
            labels=[window.label(b) for b in window.buckets()],
            series=[
                {
                    "name": "Cost (USD)",
                    "values": [float(c) for c in _per_bucket(window, per_bucket, Decimal(0))],
                }
            ],
            xLabel=window.axis,
            yLabel="USD",
        )
    ]
    models = sorted(by_model, key=lambda r: -((r["input"] or 0) + (r["output"] or 0)))
    shown, rest = models[: MAX_BAR_LABELS - 1], models[MAX_BAR_LABELS - 1 :]
    if len(rest) == 1:
        shown, rest = models, []
    labels = [f"{r['provider']}/{r['model']}"[:200] for r in shown]
    tokens_in_by = [r["input"] or 0 for r in shown]
    tokens_out_by = [r["output"] or 0 for r in shown]
    if rest:
        labels.append(f"{len(rest)} other models")
        tokens_in_by.append(sum(r["input"] or 0 for r in rest))
        tokens_out_by.append(sum(r["output"] or 0 for r in rest))
    charts.append(
        _chart(
            "bar",
            title="Tokens by model",
            labels=labels,
            series=[
                {"name": "Input tokens", "values": tokens_in_by},
                {"name": "Output tokens", "values": tokens_out_by},
            ],
            yLabel="tokens",
        )
    )
    if cost > 0:
        priced = [r for r in by_provider if (r["cost"] or 0) > 0]
        charts.append(
            _chart(
                "pie",
                title="Cost by provider (USD)",
                labels=[r["provider"][:200] for r in priced],
                series=[{"name": "Cost (USD)", "values": [float(r["cost"]) for r in priced]}],
            )
        )
    points: dict[str, list[list[int]]] = defaultdict(list)
    timed = (
        rows.filter(error="")
        .exclude(latency_ms=None)
        .order_by("-created_at")
        .values_list("provider", "input_tokens", "output_tokens", "latency_ms")[:MAX_CHART_POINTS]
    )
    for provider, t_in, t_out, latency in timed:
        if latency is not None:
            points[provider].append([t_in + t_out, latency])
    if points:
        charts.append(
            _chart(
                "scatter",
                title="Latency against tokens",
                series=[{"name": p[:200], "points": pts} for p, pts in sorted(points.items())][
                    :MAX_CHART_SERIES
                ],
                xLabel="tokens",
                yLabel="latency (ms)",
            )
        )
    return Report("\n".join(lines), charts)


# ---- conversations ----------------------------------------------------------------------------
ROLE_NAMES = {"user": "From you", "assistant": "Answers", "system": "System", "tool": "Tool"}


def conversations_report(user_id: Any, window: Window) -> Report:
    """The user's messages in the window: per day (or hour) by role, and where (sync: DB pool)."""
    messages = Message.objects.filter(
        conversation__user_id=user_id, created_at__gte=window.since, created_at__lte=window.until
    )
    by_role = dict(messages.values_list("role").annotate(n=Count("id")).order_by("role"))
    n = sum(by_role.values())
    title = f"**Your conversations, {window.heading}**"
    if not n:
        return Report(
            f"{title}\n\nNothing to report: there are no messages in the {RANGE_WORDS[window.range]}."
        )
    active = messages.values("conversation_id").distinct().count()
    new = Conversation.objects.filter(
        user_id=user_id, created_at__gte=window.since, created_at__lte=window.until
    ).count()
    per_bucket: dict[str, dict[datetime, int]] = defaultdict(dict)
    for r in (
        messages.annotate(bucket=window.trunc("created_at")).values("bucket", "role").annotate(n=Count("id"))
    ):
        per_bucket[r["role"]][_bucket_key(r["bucket"])] = r["n"]
    totals_per_bucket: Counter[datetime] = Counter()
    for counts in per_bucket.values():
        totals_per_bucket.update(counts)
    busiest, busiest_n = min(totals_per_bucket.items(), key=lambda kv: (-kv[1], kv[0]))
    top = list(
        messages.values("conversation_id", "conversation__title")
        .annotate(n=Count("id"))
        .order_by("-n", "conversation__title", "conversation_id")[:MAX_BAR_LABELS]
    )

    roles = [r for r in ROLE_NAMES if r in by_role]
    role_words = ", ".join(f"{count(by_role[r])} {ROLE_NAMES[r].lower()}" for r in roles)
    lines = [
        title,
        "",
        f"- Messages: {count(n)} ({role_words})",
        f"- Conversations: {count(active)} active, {count(new)} new",
        f"- Average: {count(round(n / active, 1))} messages per active conversation",
        f"- Busiest {window.unit}: {window.label(busiest)} ({count(busiest_n)} messages)",
    ]
    charts = [
        _chart(
            "line",
            title=f"Messages per {window.unit}",
            labels=[window.label(b) for b in window.buckets()],
            series=[{"name": ROLE_NAMES[r], "values": _per_bucket(window, per_bucket[r], 0)} for r in roles],
            xLabel=window.axis,
            yLabel="messages",
        ),
        _chart(
            "pie",
            title="Messages by role",
            labels=[ROLE_NAMES[r] for r in roles],
            series=[{"name": "Messages", "values": [by_role[r] for r in roles]}],
        ),
        _chart(
            "bar",
            title="Most active conversations",
            labels=[(r["conversation__title"] or "Untitled")[:60] for r in top],
            series=[{"name": "Messages", "values": [r["n"] for r in top]}],
            yLabel="messages",
        ),
    ]
    return Report("\n".join(lines), charts)


# ---- a table the model already has -------------------------------------------------------------
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def query_report(columns: list[str], rows: list[list[Any]]) -> Report:
    """Summary statistics of a table's numeric columns and a chart of them (no database access)."""
    title = f"**Report on a table of {count(len(rows))} rows and {count(len(columns))} columns**"
    if not rows:
        return Report(f"{title}\n\nNothing to report: the table has no rows.")
    numeric = [
        i
        for i in range(len(columns))
        if any(row[i] is not None for row in rows)
        and all(row[i] is None or _is_number(row[i]) for row in rows)
    ]
    label_col = next((i for i in range(len(columns)) if i not in numeric), None)
    lines = [title, ""]
    for i in numeric[:MAX_CHART_SERIES]:
        values = [row[i] for row in rows if row[i] is not None]
        total = sum(values)
        lines.append(
            f"- {columns[i]}: total {count(total)}, average {count(round(total / len(values), 2))}, "
            f"min {count(min(values))}, max {count(max(values))}"
        )
    if not numeric:
        lines.append("- No column holds numbers, so there is nothing to chart.")
        return Report("\n".join(lines))

    charts: list[ChartPart] = []
    series_cols = numeric[:MAX_CHART_SERIES]
    if label_col is None and len(numeric) >= 2:
        x, y = numeric[0], numeric[1]
        points = [[row[x], row[y]] for row in rows if row[x] is not None and row[y] is not None]
        charts.append(
            _chart(
                "scatter",
                title=f"{columns[y]} against {columns[x]}",
                series=[{"name": columns[y], "points": points}],
                xLabel=columns[x],
                yLabel=columns[y],
            )
        )
        return Report("\n".join(lines), charts)
    labels = (
        [str(row[label_col])[:200] if row[label_col] is not None else "" for row in rows]
        if label_col is not None
        else [str(i + 1) for i in range(len(rows))]
    )
    dated = label_col is not None and all(
        isinstance(row[label_col], str) and _ISO_DATE.match(row[label_col]) for row in rows
    )
    charts.append(
        _chart(
            "line" if dated else "bar",
            title=", ".join(columns[i] for i in series_cols)
            + (f" by {columns[label_col]}" if label_col is not None else ""),
            labels=labels,
            series=[{"name": columns[i], "values": [row[i] for row in rows]} for i in series_cols],
            xLabel=columns[label_col] if label_col is not None else "row",
        )
    )
    first = [row[numeric[0]] for row in rows]
    if (
        not dated
        and len(rows) <= MAX_BAR_LABELS
        and all(v is not None and v >= 0 for v in first)
        and sum(first) > 0
    ):
        charts.append(
            _chart(
                "pie",
                title=f"Share of {columns[numeric[0]]}",
                labels=labels,
                series=[{"name": columns[numeric[0]], "values": first}],
            )
        )
    return Report("\n".join(lines), charts)


# ---- the tool ---------------------------------------------------------------------------------
class GenerateReport(Tool):
    name = "generateReport"
    description = (
        "Make a report with charts over the user's own data: 'usage' (tokens and cost per day, by "
        "model and provider, latency), 'conversations' (messages per day by role, most active "
        "conversations), over a range of 24h, 7d, 30d or 90d; or 'query' to summarise and chart a "
        "table you already have (columns and rows, e.g. from queryDatabase)."
    )
    Args = ReportArgs
    tiers = frozenset({"free", "pro"})

    async def run(self, ctx: ToolContext, args: Any) -> ToolResult:
        if args.subject == "query":
            return query_report(args.columns, args.rows).result()
        until = timezone.now()
        window = Window(since=until - RANGES[args.range], until=until, range=args.range)
        build = usage_report if args.subject == "usage" else conversations_report
        report = await db.run(build, ctx.user_id, window)
        return report.result()
