"""Cost and latency rollups: usage rows summed per hour and per day (``UsageRollup``).

One aggregation (``group``) turns usage rows into per-group sums — by provider, model, model tier and
the account's plan, and optionally by hour — in one SQL query; the rollup job stores its result for
closed hours, and the dashboard, the admin and ``/metrics`` use the same function on the raw rows of
the last hour. So a figure means the same whichever side of the cut-over it comes from.

Idempotent: a period is always recomputed whole (its rows deleted and inserted in one transaction).
``roll_recent`` re-rolls every hour whose stored row count differs from the raw rows' count — a row
committed after its hour was rolled (a turn finishing across the hour, the orphan sweep) and rows
deleted with their user are both caught — and the days around them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from usage.models import UsageMetric, UsageRollup

# Upper bounds (ms) of the latency histograms' buckets; a last bucket holds the rest (+Inf).
LATENCY_BUCKETS_MS: tuple[int, ...] = (
    25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10_000, 15_000, 20_000,
    30_000, 60_000, 120_000,
)  # fmt: skip
GROUP_FIELDS = ("provider", "model", "tier", "user_tier")
COUNT_FIELDS = ("requests", "errors", "timeouts", "rate_limited", "cache_hits", "unpriced")
TOKEN_FIELDS = (
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cache_write_tokens",
)
MONEY_FIELDS = ("cost_usd", "estimated_cost_usd", "saved_cost_usd")
HISTOGRAMS = ("latency_buckets", "ttft_buckets", "cached_latency_buckets")
ZERO = Decimal("0")
MICRO = Decimal("0.000001")

ERROR = ~Q(error="")
OK = Q(error="")
ESTIMATED = Q(input_estimated=True) | Q(output_estimated=True)
# Which rows each histogram counts, and from which column.
_HISTOGRAM_SOURCES = {
    "latency_buckets": ("latency_ms", OK & Q(cache_hit=False)),
    "ttft_buckets": ("ttft_ms", OK & Q(cache_hit=False)),
    "cached_latency_buckets": ("latency_ms", OK & Q(cache_hit=True)),
}


@dataclass
class Sums:
    """A group's sums: what a rollup row stores, and what the dashboard adds up."""

    requests: int = 0
    errors: int = 0
    timeouts: int = 0
    rate_limited: int = 0
    cache_hits: int = 0
    unpriced: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: Decimal = ZERO
    estimated_cost_usd: Decimal = ZERO
    saved_cost_usd: Decimal = ZERO
    latency_sum_ms: int = 0
    latency_buckets: list[int] = field(default_factory=lambda: empty_histogram())
    ttft_buckets: list[int] = field(default_factory=lambda: empty_histogram())
    cached_latency_buckets: list[int] = field(default_factory=lambda: empty_histogram())

    def add(self, other: Sums | UsageRollup) -> Sums:
        for name in (*COUNT_FIELDS, *TOKEN_FIELDS, *MONEY_FIELDS, "latency_sum_ms"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in HISTOGRAMS:
            mine, theirs = getattr(self, name), getattr(other, name) or []
            for i, n in enumerate(theirs[: len(mine)]):
                mine[i] += n
        return self

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def rate(self, name: str) -> float:
        return getattr(self, name) / self.requests if self.requests else 0.0

    def percentile(self, q: float, histogram: str = "latency_buckets") -> int | None:
        return histogram_percentile(getattr(self, histogram), q)

    def as_fields(self) -> dict:
        return {name: getattr(self, name) for name in Sums.__dataclass_fields__}


def empty_histogram() -> list[int]:
    return [0] * (len(LATENCY_BUCKETS_MS) + 1)


def histogram_percentile(counts: list[int], q: float) -> int | None:
    """The q-th percentile (0 to 100) of a bucketed histogram, interpolated linearly inside its bucket
    (as Prometheus's histogram_quantile does); the open last bucket answers its lower bound."""
    total = sum(counts)
    if not total:
        return None
    rank = q / 100 * total
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            if i == len(LATENCY_BUCKETS_MS):
                return LATENCY_BUCKETS_MS[-1]
            low = LATENCY_BUCKETS_MS[i - 1] if i else 0
            high = LATENCY_BUCKETS_MS[i]
            return round(low + (high - low) * max(0.0, rank - seen) / n)
        seen += n
    return LATENCY_BUCKETS_MS[-1]


def bucket_of(ms: int) -> int:
    return bisect.bisect_left(LATENCY_BUCKETS_MS, ms)


def _aggregates() -> dict:
    """The SQL aggregates of ``group``, named ``agg_<field>`` (a model field's own name is taken)."""
    out = {
        "requests": Count("id"),
        "errors": Count("id", filter=ERROR),
        "timeouts": Count("id", filter=ERROR & Q(error__icontains="timeout")),
        "rate_limited": Count("id", filter=Q(status_code=429)),
        "cache_hits": Count("id", filter=Q(cache_hit=True)),
        "unpriced": Count("id", filter=Q(cost_usd=None, cache_hit=False)),
        **{name: Sum(name) for name in TOKEN_FIELDS},
        "cost_usd": Sum("cost_usd"),
        "estimated_cost_usd": Sum("cost_usd", filter=ESTIMATED),
        "saved_cost_usd": Sum("saved_cost_usd"),
        "latency_sum_ms": Sum("latency_ms", filter=OK & Q(cache_hit=False)),
    }
    # Cumulative counts at each bucket's bound (one filtered COUNT each), differenced below.
    for name, (column, rows) in _HISTOGRAM_SOURCES.items():
        for i, bound in enumerate(LATENCY_BUCKETS_MS):
            out[f"{name}__{i}"] = Count("id", filter=rows & Q(**{f"{column}__lte": bound}))
        out[f"{name}__all"] = Count("id", filter=rows & Q(**{f"{column}__isnull": False}))
    return {f"agg_{name}": value for name, value in out.items()}


def _sums(row: dict) -> Sums:
    sums = Sums()
    for name in (*COUNT_FIELDS, *TOKEN_FIELDS, "latency_sum_ms"):
        setattr(sums, name, row[f"agg_{name}"] or 0)
    for name in MONEY_FIELDS:  # SQLite sums decimals as floats: back to the column's 6 places
        setattr(sums, name, Decimal(row[f"agg_{name}"] or 0).quantize(MICRO))
    for name in HISTOGRAMS:
        cumulative = [row[f"agg_{name}__{i}"] for i in range(len(LATENCY_BUCKETS_MS))]
        cumulative.append(row[f"agg_{name}__all"])
        setattr(sums, name, [c - (cumulative[i - 1] if i else 0) for i, c in enumerate(cumulative)])
    return sums


def group(rows: QuerySet[UsageMetric], by: str | None = None) -> Iterator[tuple[dict, Sums]]:
    """``rows`` summed per provider, model, model tier and plan, and per ``by`` ("hour" or "day",
    UTC) when given: ``(key, sums)`` pairs, the key holding the group's fields (and ``start``)."""
    fields: list[str] = list(GROUP_FIELDS)
    if by:
        trunc = {"hour": TruncHour, "day": TruncDay}[by]
        rows = rows.annotate(start=trunc("created_at", tzinfo=UTC))
        fields.append("start")
    for row in rows.order_by().values(*fields).annotate(**_aggregates()):
        yield {name: row[name] for name in fields}, _sums(row)


def floor_hour(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(when: datetime) -> datetime:
    return floor_hour(when).replace(hour=0)


def roll_hour(start: datetime) -> int:
    """(Re)compute one hour's rollup rows from the raw rows; how many groups it has."""
    start = floor_hour(start)
    rows = UsageMetric.objects.filter(created_at__gte=start, created_at__lt=start + timedelta(hours=1))
    return _replace(UsageRollup.Period.HOUR, start, ((key, sums) for key, sums in group(rows)))


def roll_day(start: datetime) -> int:
    """(Re)compute one day's rollup rows from its hours' rollups."""
    start = floor_day(start)
    totals: dict[tuple, Sums] = {}
    hours = UsageRollup.objects.filter(
        period=UsageRollup.Period.HOUR, start__gte=start, start__lt=start + timedelta(days=1)
    )
    for hour in hours:
        totals.setdefault(tuple(getattr(hour, f) for f in GROUP_FIELDS), Sums()).add(hour)
    return _replace(
        UsageRollup.Period.DAY,
        start,
        ((dict(zip(GROUP_FIELDS, key, strict=True)), sums) for key, sums in totals.items()),
    )


def _replace(period: str, start: datetime, groups: Iterable[tuple[dict, Sums]]) -> int:
    new = [
        UsageRollup(period=period, start=start, **{f: key[f] for f in GROUP_FIELDS}, **sums.as_fields())
        for key, sums in groups
    ]
    with transaction.atomic():
        UsageRollup.objects.filter(period=period, start=start).delete()
        UsageRollup.objects.bulk_create(new)
    return len(new)


def stale_hours(since: datetime, until: datetime) -> list[datetime]:
    """Closed hours in [since, until) whose rollup does not count the raw rows there are now."""
    raw = {
        row["start"]: row["n"]
        for row in UsageMetric.objects.filter(created_at__gte=since, created_at__lt=until)
        .annotate(start=TruncHour("created_at", tzinfo=UTC))
        .order_by()
        .values("start")
        .annotate(n=Count("id"))
    }
    rolled = {
        row["start"]: row["n"]
        for row in UsageRollup.objects.filter(
            period=UsageRollup.Period.HOUR, start__gte=since, start__lt=until
        )
        .order_by()
        .values("start")
        .annotate(n=Sum("requests"))
    }
    return sorted(h for h in raw.keys() | rolled.keys() if raw.get(h, 0) != (rolled.get(h) or 0))


# How far back the frequent rollup job (and the readers) look for hours to re-roll; older hours are
# checked by the daily ``roll_all``.
STALE_HORIZON = timedelta(days=2)


def roll_recent(now: datetime | None = None, days: int = STALE_HORIZON.days) -> dict:
    """Roll every closed hour of the last ``days`` days that is missing or out of date, then the days
    those hours belong to. Safe to run as often as wanted and from several processes at once."""
    now = now or timezone.now()
    until = floor_hour(now)
    hours = stale_hours(until - timedelta(days=days), until)
    for hour in hours:
        roll_hour(hour)
    days_touched = sorted({floor_day(h) for h in hours})
    for day in days_touched:
        roll_day(day)
    return {"hours": len(hours), "days": len(days_touched)}


def roll_all(now: datetime | None = None) -> dict:
    """Roll every hour whose rollup is missing or out of date, however old (the daily job: a first
    run, rows restored or deleted long after their hour)."""
    now = now or timezone.now()
    first = UsageMetric.objects.order_by("created_at").values_list("created_at", flat=True).first()
    if first is None:
        return {"hours": 0, "days": 0}
    return roll_recent(now, days=(now - first).days + 1)


def sums_between(
    since: datetime, until: datetime, by: str | None = None, rows: QuerySet[UsageMetric] | None = None
) -> Iterator[tuple[dict, Sums]]:
    """Usage in [since, until) per group (and per hour or day with ``by``): closed hours from the
    rollups; the last hour, partial hours at the ends, and recent hours the rollups have not caught up
    with (within ``STALE_HORIZON``, the rollup job's reach) from the raw rows.

    ``rows``, a filtered ``UsageMetric`` queryset, restricts it (then everything is read raw: the
    rollups keep no per-row filters).
    """
    if rows is not None:
        yield from group(rows.filter(created_at__gte=since, created_at__lt=until), by)
        return
    first = floor_hour(since) + (timedelta(hours=1) if since != floor_hour(since) else timedelta(0))
    cut = min(floor_hour(until), floor_hour(timezone.now()) - timedelta(hours=1))
    raw = Q(created_at__gte=since, created_at__lt=min(first, until)) | Q(
        created_at__gte=max(cut, since), created_at__lt=until
    )
    if first < cut:
        stale = stale_hours(max(first, cut - STALE_HORIZON), cut)
        rolled = UsageRollup.objects.filter(period=UsageRollup.Period.HOUR, start__gte=first, start__lt=cut)
        for r in rolled.exclude(start__in=stale):
            key = {f: getattr(r, f) for f in GROUP_FIELDS}
            if by:
                key["start"] = r.start if by == "hour" else floor_day(r.start)
            yield key, Sums().add(r)
        for start, end in _ranges(stale):
            raw |= Q(created_at__gte=start, created_at__lt=end)
    yield from group(UsageMetric.objects.filter(raw), by)


def _ranges(starts: list[datetime], step: timedelta = timedelta(hours=1)) -> list[tuple[datetime, datetime]]:
    """Sorted period starts (hours, or days with ``step``) as [start, end) ranges of consecutive
    periods: a short WHERE clause."""
    out: list[tuple[datetime, datetime]] = []
    for start in starts:
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], start + step)
        else:
            out.append((start, start + step))
    return out


def merge(pairs: Iterable[tuple[dict, Sums]], keys: Iterable[str]) -> dict[tuple, Sums]:
    """Sum ``(key, sums)`` pairs over the given key fields (e.g. ``("provider",)`` or ``("start",)``)."""
    keys = tuple(keys)
    out: dict[tuple, Sums] = {}
    for key, sums in pairs:
        out.setdefault(tuple(key[k] for k in keys), Sums()).add(sums)
    return out


def total(pairs: Iterable[tuple[dict, Sums]]) -> Sums:
    out = Sums()
    for _, sums in pairs:
        out.add(sums)
    return out


# The end of "everything": past any row's created_at (a row another process stamped a moment ahead).
_FOREVER = datetime(9999, 1, 1, tzinfo=UTC)


def sums_all_time(now: datetime | None = None) -> Iterator[tuple[dict, Sums]]:
    """Every usage row there is, per group (``/metrics``' all-time totals), in a few queries whatever
    the length of the history: each day before yesterday's last hour from its daily rollup when that
    counts exactly the raw rows the day has now, else from the raw rows; the rest by ``sums_between``
    (hourly rollups, then raw rows). The check per day reads only the raw rows' ``created_at``.
    """
    now = now or timezone.now()
    day_cut = floor_day(floor_hour(now) - timedelta(hours=1))
    raw_days = {
        row["day"]: row["n"]
        for row in UsageMetric.objects.filter(created_at__lt=day_cut)
        .annotate(day=TruncDay("created_at", tzinfo=UTC))
        .order_by()
        .values("day")
        .annotate(n=Count("id"))
    }
    days = UsageRollup.objects.filter(period=UsageRollup.Period.DAY, start__lt=day_cut)
    rolled = {row["start"]: row["n"] for row in days.order_by().values("start").annotate(n=Sum("requests"))}
    whole = {day for day, n in rolled.items() if raw_days.get(day, 0) == n}
    if whole:
        for r in days:
            if r.start in whole:
                yield {f: getattr(r, f) for f in GROUP_FIELDS}, Sums().add(r)
    behind = sorted(day for day in raw_days if day not in whole)
    if behind:
        spans = _ranges(behind, timedelta(days=1))
        within = Q()
        for start, end in spans:
            within |= Q(created_at__gte=start, created_at__lt=end)
        yield from group(UsageMetric.objects.filter(within))
    yield from sums_between(day_cut, _FOREVER)
