"""The staff dashboard's numbers: latency percentiles, tokens and cost, errors, cache, by provider/model."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from usage.models import Alert, RateLimitRefusal, UsageMetric

ESTIMATED = Q(input_estimated=True) | Q(output_estimated=True)


def percentile(values: Sequence[int | None], p: float) -> int | None:
    known = sorted(v for v in values if v is not None)
    if not known:
        return None
    k = max(0, min(len(known) - 1, round(p / 100 * (len(known) - 1))))
    return known[k]


def summary(hours: int = 24) -> dict:
    since = timezone.now() - timedelta(hours=hours)
    rows = UsageMetric.objects.filter(created_at__gte=since)
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
        "hours": hours,
        "groups": groups,
        "total_cost": totals["cost"] or Decimal("0"),
        # Cost of attempts whose counts were (partly) estimated: broken streams, Stop, dead processes.
        "estimated_cost": totals["estimated"] or Decimal("0"),
        "estimated_share": ((totals["estimated"] or 0) / totals["cost"]) if totals["cost"] else 0,
        "cost_per_hour": (totals["cost"] or Decimal("0")) / hours,
        "requests": n,
        "error_rate": (totals["errors"] / n) if n else 0,
        "cache_hit_rate": (totals["hits"] / n) if n else 0,
        "alerts": Alert.objects.all()[:20],
        "cache_savings": savings,
        # The spec's "caching reduces costs by > 30 %": what hits saved, of what every answer would
        # have cost without the cache.
        "cache_saving_share": saving_share(totals["cost"] or Decimal("0"), savings),
        "refusals": refusals(since),
        "cached_latency_p50": percentile(hit_latencies, 50),
    }


def saving_share(cost: Decimal, saved: Decimal) -> float:
    whole = cost + saved
    return float(saved / whole) if whole else 0.0


def refusals(since) -> dict:
    """Messages the rate limit refused since ``since``: by plan, and the people refused most."""
    rows = RateLimitRefusal.objects.filter(hour__gte=since.replace(minute=0, second=0, microsecond=0))
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
