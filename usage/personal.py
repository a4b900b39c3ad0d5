"""A person's own usage: this calendar month (UTC) by day, and what is left of their rate limits.

Shown on their settings page and at ``GET /api/usage``. Only their own usage rows are read; the
limits are read without counting a message (``standing``), so looking costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from flags.runtime import get_flags
from usage import limits, rollups
from usage.models import UsageMetric
from usage.rollups import Sums


def money(amount: Decimal) -> str:
    """USD with the usage rows' own 6 decimal places, as a string: ``"0.004217"``."""
    return format(amount.quantize(rollups.MICRO), "f")


@dataclass(frozen=True, slots=True)
class Figures:
    """One period's sums (a month, a day)."""

    requests: int  # provider attempts: an answer that failed over counts each attempt
    errors: int
    cache_hits: int
    input_tokens: int  # includes cached_input_tokens
    cached_input_tokens: int
    output_tokens: int  # includes reasoning_tokens
    reasoning_tokens: int
    cost_usd: Decimal

    @classmethod
    def of(cls, sums: Sums) -> Figures:
        return cls(
            requests=sums.requests,
            errors=sums.errors,
            cache_hits=sums.cache_hits,
            input_tokens=sums.input_tokens,
            cached_input_tokens=sums.cached_input_tokens,
            output_tokens=sums.output_tokens,
            reasoning_tokens=sums.reasoning_tokens,
            cost_usd=sums.cost_usd,
        )

    @property
    def cost(self) -> str:
        return money(self.cost_usd)


@dataclass(frozen=True, slots=True)
class Month:
    since: datetime  # the month's first instant, UTC
    until: datetime  # the next month's first instant
    total: Figures
    days: list[tuple[date, Figures]] = field(default_factory=list)  # days with usage, in order

    @property
    def name(self) -> str:
        return f"{self.since:%Y-%m}"


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """[first instant, next month's first instant) of ``now``'s calendar month in UTC."""
    since = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    until = (since + timedelta(days=32)).replace(day=1)
    return since, until


def month(user, now: datetime | None = None) -> Month:
    """``user``'s usage in the calendar month (UTC) holding ``now``: one query over their rows."""
    since, until = month_bounds(now or timezone.now())
    pairs = list(rollups.sums_between(since, until, by="day", rows=UsageMetric.objects.filter(user=user)))
    days = sorted(rollups.merge(pairs, ("start",)).items())
    return Month(
        since=since,
        until=until,
        total=Figures.of(rollups.total(pairs)),
        days=[(start.date(), Figures.of(sums)) for (start,), sums in days],
    )


@dataclass(frozen=True, slots=True)
class Standing:
    """One rate-limit window as it stands: the X-RateLimit-* figures of that window."""

    window: str  # "burst" | "quota"
    limit: int
    remaining: int
    reset_s: int  # seconds until the window starts again
    period_s: int


@dataclass(frozen=True, slots=True)
class Limits:
    state: str  # "on", "off" (the flags turned limits off) or "unavailable" (the counters are down)
    plan: str
    windows: list[Standing]


def standing(user) -> Limits:
    """Where ``user`` stands in each rate-limit window, read without counting a message: the
    counters ``limits.check_sync`` increments, read with ``increment=False``."""
    plan = getattr(user, "tier", "free")
    windows = limits.limit_for(user, get_flags())
    if windows is None:
        return Limits("off", plan, [])
    out: list[Standing] = []
    for window in windows:
        try:
            usage = limits.count(user, window, increment=False)
        except limits.CountersDown:
            return Limits("unavailable", plan, [])
        out.append(
            Standing(
                window=window.name,
                limit=window.limit,
                remaining=max(0, window.limit - int(usage["count"])),
                reset_s=max(1, int(usage["time_left"])),
                period_s=window.period_s,
            )
        )
    return Limits("on", plan, out)
