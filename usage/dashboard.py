"""The staff dashboard's numbers: latency percentiles, tokens and cost, errors, cache, by provider/model."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from usage import rollups
from usage.models import Alert, RateLimitRefusal, UsageMetric
from usage.rollups import Sums, floor_day, floor_hour

ESTIMATED = Q(input_estimated=True) | Q(output_estimated=True)


def percentile(values: Sequence[int | None], p: float) -> int | None:
    known = sorted(v for v in values if v is not None)
    if not known:
        return None
    k = max(0, min(len(known) - 1, round(p / 100 * (len(known) - 1))))
    return known[k]


def summary(since: datetime, until: datetime) -> dict:
    """The headline figures and the per-model table of [since, until), from the raw rows (exact
    percentiles; rows from before ``saved_cost_usd`` priced at the catalog's price)."""
    rows = UsageMetric.objects.filter(created_at__gte=since, created_at__lt=until)
    hours = Decimal((until - since).total_seconds()) / 3600
    groups = []
    for key in rows.values("provider", "model").annotate(n=Count("id")).order_by("-n")[:50]:
        sub = rows.filter(provider=key["provider"], model=key["model"])
        latencies = list(
            sub.filter(error="").exclude(latency_ms=None).values_list("latency_ms", flat=True)[:5000]
        )
        ttfts = list(sub.filter(error="").exclude(ttft_ms=None).values_list("ttft_ms", flat=True)[:5000])
        agg = sub.aggregate(
            input=Sum("input_tokens"),
            output=Sum("output_tokens"),
            cost=Sum("cost_usd"),
            errors=Count("id", filter=~Q(error="")),
            hits=Count("id", filter=Q(cache_hit=True)),
            unpriced=Count("id", filter=Q(cost_usd=None, cache_hit=False)),
            estimated=Sum("cost_usd", filter=ESTIMATED),
        )
        n = key["n"]
        groups.append(
            {
                **key,
                "requests": n,
                "p50": percentile(latencies, 50),
                "p95": percentile(latencies, 95),
                "p99": percentile(latencies, 99),
                "ttft_p95": percentile(ttfts, 95),
                "tokens": (agg["input"] or 0) + (agg["output"] or 0),
                "cost": agg["cost"] or Decimal("0"),
                "error_rate": (agg["errors"] / n) if n else 0,
                "cache_hit_rate": (agg["hits"] / n) if n else 0,
                "unpriced": agg["unpriced"],
                "estimated_cost": agg["estimated"] or Decimal("0"),
            }
        )
    savings, hit_latencies = cache_savings(rows)
    totals = rows.aggregate(
        cost=Sum("cost_usd"),
        estimated=Sum("cost_usd", filter=ESTIMATED),
        n=Count("id"),
        errors=Count("id", filter=~Q(error="")),
        hits=Count("id", filter=Q(cache_hit=True)),
    )
    n = totals["n"] or 0
    return {
        "groups": groups,
        "total_cost": totals["cost"] or Decimal("0"),
        # Cost of attempts whose counts were (partly) estimated: broken streams, Stop, dead processes.
        "estimated_cost": totals["estimated"] or Decimal("0"),
        "estimated_share": ((totals["estimated"] or 0) / totals["cost"]) if totals["cost"] else 0,
        "cost_per_hour": (totals["cost"] or Decimal("0")) / hours if hours else Decimal("0"),
        "requests": n,
        "error_rate": (totals["errors"] / n) if n else 0,
        "cache_hit_rate": (totals["hits"] / n) if n else 0,
        "alerts": Alert.objects.all()[:20],
        "cache_savings": savings,
        # The spec's "caching reduces costs by > 30 %": what hits saved, of what every answer would
        # have cost without the cache.
        "cache_saving_share": saving_share(totals["cost"] or Decimal("0"), savings),
        "refusals": refusals(since, until),
        "cached_latency_p50": percentile(hit_latencies, 50),
    }


def saving_share(cost: Decimal, saved: Decimal) -> float:
    whole = cost + saved
    return float(saved / whole) if whole else 0.0


def refusals(since: datetime, until: datetime) -> dict:
    """Messages the rate limit refused in the hours of [since, until): by plan, and the people refused most."""
    rows = RateLimitRefusal.objects.filter(hour__gte=floor_hour(since), hour__lt=until)
    by_tier = {r["tier"]: r["n"] for r in rows.values("tier").annotate(n=Sum("count")).order_by("tier")}
    people = list(
        rows.values("user__username", "tier").annotate(n=Sum("count")).order_by("-n", "user__username")[:10]
    )
    return {"total": sum(by_tier.values()), "by_tier": by_tier, "people": people}


def cache_savings(rows) -> tuple[Decimal, list[int]]:
    """What cache hits saved (each hit's ``saved_cost_usd``; rows from before that column: their
    usage at the catalog's price), and the hits' latencies (lookup and replay)."""
    from providers.catalog import cost_of
    from providers.events import Usage

    saved = Decimal("0")
    latencies: list[int] = []
    hits = rows.filter(cache_hit=True).values_list(
        "saved_cost_usd",
        "provider",
        "model",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "latency_ms",
    )
    for stored, provider, model, inp, cached, out, reasoning, latency in hits[:10_000]:
        cost = stored if stored is not None else cost_of(provider, model, Usage(inp, out, cached, reasoning))
        saved += cost or Decimal("0")
        if latency is not None:
            latencies.append(latency)
    return saved, latencies


def with_error_rates(providers: list[dict], minutes: int = 5) -> list[dict]:
    """Add each provider's recent error rate (from usage rows) to its breaker row."""
    since = timezone.now() - timedelta(minutes=minutes)
    counts = {
        row["provider"]: row
        for row in UsageMetric.objects.filter(created_at__gte=since)
        .values("provider")
        .annotate(n=Count("id"), errors=Count("id", filter=~Q(error="")))
    }
    for row in providers:
        c = counts.get(row["provider"])
        row["recent_requests"] = c["n"] if c else 0
        row["recent_error_rate"] = (c["errors"] / c["n"]) if c and c["n"] else None
    return providers


# ---- the range picker ---------------------------------------------------------------------------
PRESETS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_PRESET = "24h"
HOURLY_UP_TO = timedelta(hours=48)  # longer ranges are drawn per day
MAX_SPAN = timedelta(days=366)
MIN_SPAN = timedelta(minutes=1)


class RangeError(ValueError):
    """A range the picker cannot show; its message is for the person who asked."""


@dataclass(frozen=True)
class Window:
    """The dashboard's time range, [since, until) in UTC, and how it was asked for."""

    since: datetime
    until: datetime
    preset: str  # one of PRESETS, "custom", or "<N>h" (the older ?hours=N)

    @property
    def bucket(self) -> str:
        return "hour" if self.until - self.since <= HOURLY_UP_TO else "day"

    def starts(self) -> list[datetime]:
        """Every bucket's first instant, so the charts show empty hours (days) as gaps or zeros."""
        step = timedelta(hours=1) if self.bucket == "hour" else timedelta(days=1)
        at = floor_hour(self.since) if self.bucket == "hour" else floor_day(self.since)
        out = []
        while at < self.until:
            out.append(at)
            at += step
        return out

    def params(self) -> dict[str, str]:
        """The query parameters that ask for this range again (the CSV links)."""
        if self.preset in PRESETS:
            return {"range": self.preset}
        if self.preset == "custom":
            return {"range": "custom", "from": local(self.since), "to": local(self.until)}
        return {"hours": str(round((self.until - self.since) / timedelta(hours=1)))}  # the older hours=N

    def describe(self) -> str:
        if self.preset != "custom":
            return f"last {self.preset}"
        return f"{self.since:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M} UTC"


def local(when: datetime) -> str:
    """A UTC instant as an <input type="datetime-local"> value (minutes, the picker's precision)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


# What the picker sends (YYYY-MM-DDTHH:MM), seconds and an offset allowed; nothing looser (Python's
# fromisoformat alone takes week dates and trailing NULs).
_INSTANT = re.compile(
    r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d{1,6})?)?)?(?:Z|[+-]\d\d:\d\d)?", re.ASCII
)


def _instant(raw: str, name: str) -> datetime:
    try:
        if not _INSTANT.fullmatch(raw):
            raise ValueError
        when = datetime.fromisoformat(raw)
        if when.tzinfo is None:  # the picker's inputs are labelled UTC
            when = when.replace(tzinfo=UTC)
        return when.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999
        shown = raw[:40] + ("…" if len(raw) > 40 else "")
        raise RangeError(
            f"The {name} “{shown}” is not a date and time: use YYYY-MM-DDTHH:MM (UTC)."
        ) from None


def parse_window(params: Mapping[str, str], now: datetime | None = None) -> Window:
    """The range a request asks for: ``range`` = 1h, 24h, 7d, 30d or custom (with ``from`` and
    ``to``, UTC). The older ``hours=N`` still works (anything unreadable there means the default).
    Raises ``RangeError`` with a message for anything else."""
    now = now or timezone.now()
    preset = params.get("range")
    if preset is None:
        raw = params.get("hours", "")
        if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 24 * 30:
            return Window(now - timedelta(hours=int(raw)), now, f"{int(raw)}h")
        preset = DEFAULT_PRESET
    if preset in PRESETS:
        return Window(now - PRESETS[preset], now, preset)
    if preset != "custom":
        choices = ", ".join(PRESETS)
        raise RangeError(f"Unknown range “{preset[:20]}”: choose {choices} or a custom range.")
    start, end = params.get("from", "").strip(), params.get("to", "").strip()
    if not start or not end:
        raise RangeError("A custom range needs both a start (from) and an end (to).")
    since, until = _instant(start, "start"), _instant(end, "end")
    if since >= now:
        raise RangeError("The start of the range is in the future.")
    until = min(until, now)  # nothing has happened after now: the range ends here
    if since >= until:
        raise RangeError("The start of the range must be before its end.")
    if until - since < MIN_SPAN:
        raise RangeError("A custom range must be at least a minute long.")
    if until - since > MAX_SPAN:
        raise RangeError(f"A custom range can be at most {MAX_SPAN.days} days long.")
    return Window(since, until, "custom")


# ---- the charts -----------------------------------------------------------------------------------
# Each chart is one table of numbers (the HTML table and the CSV) and the lines or bars drawn from it.
CHARTS = {
    "latency": "Latency p50 / p95 / p99 by provider and model (ms)",
    "tokens": "Tokens by provider, model and plan",
    "cost": "Cost by provider, model and plan (USD)",
    "tokens_per_request": "Average tokens per request by provider and model",
    "errors": "Error, timeout and rate-limit (429) rates",
    "cache": "Cache hit rate and savings",
    "cached_latency": "Cached answers' latency (ms)",
}
MAX_SERIES = 8  # lines or stacks drawn per chart (the busiest); the table and the CSV have them all


@dataclass
class Chart:
    name: str
    title: str
    kind: str  # "line" or "bar"
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    datasets: list[dict] = field(default_factory=list)
    stacked: bool = False
    y_title: str = ""
    y2_title: str = ""  # a second axis on the right (the cache chart's savings)
    note: str = ""
    csv_url: str = ""

    def cells(self) -> list[list[str]]:
        return [[cell(v) for v in row] for row in self.rows]

    def payload(self) -> dict:
        """What static/js/dashboard.js draws (through json_script)."""
        return {
            "kind": self.kind,
            "labels": self.labels,
            "datasets": self.datasets,
            "stacked": self.stacked,
            "yTitle": self.y_title,
            "y2Title": self.y2_title,
        }

    def points(self) -> int:
        return sum(sum(1 for v in d["data"] if v is not None) for d in self.datasets)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cell(value) -> str:
    """A table or CSV cell: UTC ISO instants, exact decimals, rates to six places, blanks for none."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def _ratio(a: int | Decimal, b: int) -> float | None:
    return float(a) / b if b else None


def _money(x: Decimal) -> float:
    return float(x)


def _series_order(by_group: dict[tuple, Sums]) -> list[tuple]:
    return sorted(by_group, key=lambda k: (-by_group[k].requests, k))


def _label(group: tuple) -> str:
    return " · ".join(str(part) or "(none)" for part in group)


def charts(window: Window) -> list[Chart]:
    """Every chart of the range, from ``rollups.sums_between``: rollups for closed hours, raw rows
    for the last hour; per hour for ranges up to 48 h, per day beyond."""
    pairs = list(rollups.sums_between(window.since, window.until, by=window.bucket))
    starts = window.starts()
    fmt = "%m-%d %H:00" if window.bucket == "hour" else "%Y-%m-%d"
    labels = [s.strftime(fmt) for s in starts]
    per_start = rollups.merge(pairs, ("start",))
    per_model = rollups.merge(pairs, ("start", "provider", "model"))
    per_plan = rollups.merge(pairs, ("start", "provider", "model", "user_tier"))
    models = rollups.merge(pairs, ("provider", "model"))
    plans = rollups.merge(pairs, ("provider", "model", "user_tier"))
    blank = Sums()
    out = []

    def each(table: dict[tuple, Sums], group: tuple) -> list[Sums]:
        return [table.get((s, *group), blank) for s in starts]

    def chart(name: str, kind: str, columns: list[str], **extra) -> Chart:
        c = Chart(name, CHARTS[name], kind, columns, labels=labels, **extra)
        out.append(c)
        return c

    def capped(c: Chart, groups: list[tuple]) -> list[tuple]:
        if len(groups) > MAX_SERIES:
            c.note = f"The {MAX_SERIES} busiest of {len(groups)} are drawn; the table has them all."
        return groups[:MAX_SERIES]

    # Latency of answered attempts (cache hits apart), from the histograms.
    c = chart(
        "latency",
        "line",
        ["start", "provider", "model", "answered", "p50_ms", "p95_ms", "p99_ms", "ttft_p95_ms"],
        y_title="ms",
    )
    for (start, provider, model), s in sorted(per_model.items()):
        if answered := sum(s.latency_buckets):
            c.rows.append(
                [start, provider, model, answered, s.percentile(50), s.percentile(95), s.percentile(99),
                 s.percentile(95, "ttft_buckets")]
            )  # fmt: skip
    for group in capped(c, _series_order(models)):
        for q in (50, 95, 99):
            c.datasets.append(
                {"label": f"{_label(group)} p{q}", "data": [s.percentile(q) for s in each(per_model, group)],
                 "group": _label(group), "dash": q != 95}
            )  # fmt: skip

    # Tokens and cost, stacked by provider, model and plan.
    c = chart(
        "tokens",
        "bar",
        ["start", "provider", "model", "user_tier", "requests", "input_tokens", "output_tokens", "tokens"],
        stacked=True,
        y_title="tokens",
    )
    for (start, provider, model, plan), s in sorted(per_plan.items()):
        c.rows.append([start, provider, model, plan, s.requests, s.input_tokens, s.output_tokens, s.tokens])
    for group in capped(c, _series_order(plans)):
        c.datasets.append({"label": _label(group), "data": [s.tokens for s in each(per_plan, group)]})
    c = chart(
        "cost",
        "bar",
        ["start", "provider", "model", "user_tier", "requests", "cost_usd", "estimated_cost_usd", "unpriced"],
        stacked=True,
        y_title="USD",
    )
    for (start, provider, model, plan), s in sorted(per_plan.items()):
        c.rows.append(
            [start, provider, model, plan, s.requests, s.cost_usd, s.estimated_cost_usd, s.unpriced]
        )
    for group in capped(c, _series_order(plans)):
        c.datasets.append(
            {"label": _label(group), "data": [_money(s.cost_usd) for s in each(per_plan, group)]}
        )

    c = chart(
        "tokens_per_request",
        "line",
        ["start", "provider", "model", "requests", "tokens", "tokens_per_request"],
        y_title="tokens per request",
    )
    for (start, provider, model), s in sorted(per_model.items()):
        c.rows.append([start, provider, model, s.requests, s.tokens, _ratio(s.tokens, s.requests)])
    for group in capped(c, _series_order(models)):
        c.datasets.append(
            {"label": _label(group), "data": [_ratio(s.tokens, s.requests) for s in each(per_model, group)]}
        )

    # Rates over every attempt in the bucket.
    c = chart(
        "errors",
        "line",
        ["start", "requests", "errors", "timeouts", "rate_limited", "error_rate", "timeout_rate",
         "rate_limit_rate"],
        y_title="% of attempts",
    )  # fmt: skip
    for (start,), s in sorted(per_start.items()):
        c.rows.append(
            [start, s.requests, s.errors, s.timeouts, s.rate_limited, s.rate("errors"), s.rate("timeouts"),
             s.rate("rate_limited")]
        )  # fmt: skip
    buckets = [per_start.get((s,), blank) for s in starts]
    for label, name in (
        ("errors", "errors"),
        ("timeouts", "timeouts"),
        ("rate-limited (429)", "rate_limited"),
    ):
        c.datasets.append({"label": label, "data": [_percent(s, name) for s in buckets]})

    c = chart(
        "cache",
        "line",
        ["start", "requests", "cache_hits", "hit_rate", "saved_cost_usd"],
        y_title="% of attempts",
        y2_title="USD saved",
    )
    for (start,), s in sorted(per_start.items()):
        c.rows.append([start, s.requests, s.cache_hits, s.rate("cache_hits"), s.saved_cost_usd])
    c.datasets.append({"label": "hit rate", "data": [_percent(s, "cache_hits") for s in buckets]})
    c.datasets.append(
        {"label": "saved", "data": [_money(s.saved_cost_usd) for s in buckets], "type": "bar", "axis": "y2"}
    )

    c = chart("cached_latency", "line", ["start", "cache_hits", "p50_ms", "p95_ms", "p99_ms"], y_title="ms")
    for (start,), s in sorted(per_start.items()):
        if answered := sum(s.cached_latency_buckets):
            c.rows.append(
                [start, answered, *(s.percentile(q, "cached_latency_buckets") for q in (50, 95, 99))]
            )
    for q in (50, 95, 99):
        c.datasets.append(
            {"label": f"p{q}", "data": [s.percentile(q, "cached_latency_buckets") for s in buckets]}
        )
    return out


def _percent(s: Sums, name: str) -> float | None:
    return round(100 * s.rate(name), 3) if s.requests else None
