"""``GET /metrics``: usage, cost, latency, breakers and refusals in the Prometheus text format.

Every figure is read at scrape time from what all processes share — the usage rows and their rollups
in the database (``rollups.sums_all_time``), the rate-limit refusals, the circuit breakers in Redis —
never from counters in this process's memory. So any server process answers the same numbers, a
restart resets nothing, and a load balancer may send each scrape anywhere.

Off unless ``CHIMERA_METRICS_TOKEN`` is set (then 404); scrapers send
``Authorization: Bearer <token>``. The metric names, labels and meanings are listed in the README
("Metrics").
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from providers.breaker import BreakerSnapshot, get_breaker
from usage import rollups
from usage.models import RateLimitRefusal
from usage.rollups import LATENCY_BUCKETS_MS, Sums

ATTEMPT_LABELS = ("provider", "model", "tier", "user_tier")
TOKEN_KINDS = {  # the label value -> the usage row's column
    "input": "input_tokens",
    "cached_input": "cached_input_tokens",
    "cache_write": "cache_write_tokens",
    "output": "output_tokens",
    "reasoning": "reasoning_tokens",
}
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}


@dataclass(frozen=True, slots=True)
class Reading:
    """Everything one scrape reports, read from the shared stores."""

    usage: list[tuple[dict, Sums]]  # all-time sums per provider, model, model tier and plan
    refusals: dict[str, int]  # plan -> messages the rate limit refused
    breakers: list[BreakerSnapshot]


def read() -> Reading:
    """One scrape's figures: a few database queries and one Redis round trip."""
    refusals = {
        row["tier"]: row["n"]
        for row in RateLimitRefusal.objects.order_by().values("tier").annotate(n=Sum("count"))
    }
    return Reading(
        usage=list(rollups.sums_all_time()),
        refusals=refusals,
        breakers=async_to_sync(get_breaker().snapshot)(),
    )


def _usd(amount: Decimal) -> float:
    # Prometheus values are floats: the exact Decimal sum, rounded once here (15+ significant digits).
    return float(amount)


def _buckets(counts: list[int]) -> list[tuple[str, float]]:
    """Our non-cumulative bucket counts (ms bounds, the last one open) as Prometheus' cumulative
    ``le`` buckets in seconds."""
    out: list[tuple[str, float]] = []
    seen = 0
    for i, n in enumerate(counts):
        seen += n
        le = repr(LATENCY_BUCKETS_MS[i] / 1000) if i < len(LATENCY_BUCKETS_MS) else "+Inf"
        out.append((le, float(seen)))
    return out


class UsageCollector(Collector):
    """The metric families of one ``Reading`` (registered on a private registry per scrape)."""

    def __init__(self, reading: Reading) -> None:
        self.reading = reading

    def collect(self) -> Iterator[Metric]:
        yield from self._attempts()
        yield from self._money_and_tokens()
        yield from self._latency()
        yield from self._operations()

    def _per(self, keys: Iterable[str]) -> list[tuple[tuple, Sums]]:
        return sorted(rollups.merge(self.reading.usage, keys).items())

    def _attempts(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "chimera_requests",
            "Provider attempts (one per usage row; a failed-over answer counts each attempt), by outcome.",
            labels=[*ATTEMPT_LABELS, "outcome"],
        )
        timeouts = CounterMetricFamily(
            "chimera_timeouts",
            "Attempts that failed by timing out (part of outcome=error).",
            labels=ATTEMPT_LABELS,
        )
        limited = CounterMetricFamily(
            "chimera_upstream_rate_limited",
            "Attempts the vendor refused with 429 (its rate limit, not ours).",
            labels=ATTEMPT_LABELS,
        )
        unpriced = CounterMetricFamily(
            "chimera_unpriced_requests",
            "Attempts (cache hits aside) of a model without a price in the catalog: cost unknown, not in chimera_cost_usd_total.",
            labels=ATTEMPT_LABELS,
        )
        for key, sums in self._per(ATTEMPT_LABELS):
            labels = list(key)
            requests.add_metric([*labels, "ok"], sums.requests - sums.errors)
            requests.add_metric([*labels, "error"], sums.errors)
            timeouts.add_metric(labels, sums.timeouts)
            limited.add_metric(labels, sums.rate_limited)
            unpriced.add_metric(labels, sums.unpriced)
        yield from (requests, timeouts, limited, unpriced)

    def _money_and_tokens(self) -> Iterator[Metric]:
        tokens = CounterMetricFamily(
            "chimera_tokens",
            "Tokens by kind; input includes cached_input and cache_write, output includes reasoning.",
            labels=["provider", "model", "kind"],
        )
        for (provider, model), sums in self._per(("provider", "model")):
            for kind, column in TOKEN_KINDS.items():
                tokens.add_metric([provider, model, kind], getattr(sums, column))
        cost = CounterMetricFamily(
            "chimera_cost_usd",
            "What the attempts cost in USD (the exact Decimal sum as a float; unpriced attempts add nothing).",
            labels=["provider", "model", "user_tier"],
        )
        estimated = CounterMetricFamily(
            "chimera_estimated_cost_usd",
            "The part of chimera_cost_usd_total priced from estimated token counts (streams cut short).",
            labels=["provider", "model", "user_tier"],
        )
        for (provider, model, user_tier), sums in self._per(("provider", "model", "user_tier")):
            cost.add_metric([provider, model, user_tier], _usd(sums.cost_usd))
            estimated.add_metric([provider, model, user_tier], _usd(sums.estimated_cost_usd))
        hits = CounterMetricFamily(
            "chimera_cache_hits", "Answers served from the response cache.", labels=["provider", "model"]
        )
        saved = CounterMetricFamily(
            "chimera_cache_saved_usd",
            "What the cache hits would have cost in USD (float of the Decimal sum).",
            labels=["provider", "model"],
        )
        for (provider, model), sums in self._per(("provider", "model")):
            hits.add_metric([provider, model], sums.cache_hits)
            saved.add_metric([provider, model], _usd(sums.saved_cost_usd))
        yield from (tokens, cost, estimated, hits, saved)

    def _latency(self) -> Iterator[Metric]:
        latency = HistogramMetricFamily(
            "chimera_request_latency_seconds",
            "Successful attempts' time from request to last token (cache hits not included).",
            labels=["provider", "model"],
        )
        ttft = HistogramMetricFamily(
            "chimera_time_to_first_token_seconds",
            "Successful attempts' time to first token (cache hits not included). Buckets only: no _sum.",
            labels=["provider", "model"],
        )
        cached = HistogramMetricFamily(
            "chimera_cache_hit_latency_seconds",
            "Cache hits' time from request to last piece (lookup and replay). Buckets only: no _sum.",
            labels=["provider", "model"],
        )
        for (provider, model), sums in self._per(("provider", "model")):
            labels = [provider, model]
            latency.add_metric(labels, _buckets(sums.latency_buckets), sums.latency_sum_ms / 1000)
            # The rollups keep no sum of these two: without one prometheus_client writes no _count
            # either; the le="+Inf" bucket is the count.
            ttft.add_metric(labels, _buckets(sums.ttft_buckets), None)
            cached.add_metric(labels, _buckets(sums.cached_latency_buckets), None)
        yield from (latency, ttft, cached)

    def _operations(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "chimera_breaker_state",
            "Each provider's circuit breaker: 0 closed, 1 half-open, 2 open (shared through Redis).",
            labels=["provider"],
        )
        failures = GaugeMetricFamily(
            "chimera_breaker_consecutive_failures",
            "Consecutive failures counted by each provider's circuit breaker.",
            labels=["provider"],
        )
        for snap in sorted(self.reading.breakers, key=lambda s: s.provider):
            state.add_metric([snap.provider], BREAKER_STATES[snap.state])
            failures.add_metric([snap.provider], snap.consecutive_failures)
        refusals = CounterMetricFamily(
            "chimera_rate_limit_refusals",
            "Messages our rate limit refused (burst or daily quota), by the person's plan.",
            labels=["user_tier"],
        )
        for tier, n in sorted(self.reading.refusals.items()):
            refusals.add_metric([tier], n)
        yield from (state, failures, refusals)


def render(reading: Reading) -> bytes:
    """The text exposition of ``reading`` (a private registry: nothing global, nothing kept)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(UsageCollector(reading))
    return generate_latest(registry)


def _authorized(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Constant time; bytes, so a header with any character compares instead of raising.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")
    )


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.CHIMERA_METRICS_TOKEN
    if not token:
        return HttpResponse(
            "Not found: /metrics is off (set CHIMERA_METRICS_TOKEN to turn it on).\n",
            status=404,
            content_type="text/plain; charset=utf-8",
        )
    if not _authorized(request, token):
        response = HttpResponse(
            "Unauthorized: send the metrics token as 'Authorization: Bearer <CHIMERA_METRICS_TOKEN>'.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="chimera-metrics"'
        return response
    # The classic text format (0.0.4), which every Prometheus reads; the names need no escaping.
    return HttpResponse(render(read()), content_type=CONTENT_TYPE_PLAIN_0_0_4)
