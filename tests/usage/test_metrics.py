"""GET /metrics: the Prometheus exposition of usage, cost, latency, breakers and refusals.

The expected figures are computed here, in Python, straight from the usage rows (not through
``usage.rollups``), and compared with what a scrape says, before and after the rollups run.
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from usage import rollups
from usage.models import RateLimitRefusal, UsageMetric, UsageRollup
from usage.rollups import LATENCY_BUCKETS_MS

pytestmark = pytest.mark.django_db

TOKEN = "metrics-test-token-3c9e"


def scrape(client, token: str | None = TOKEN):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.get("/metrics", **headers)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition, by sample name and labels (the parser checks the format)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def select(values: dict, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in values.items() if n == name and want <= ls)


def expected() -> dict[tuple[str, frozenset], float]:
    """What the counters must say, summed in Python from every usage row and refusal there is."""
    out: dict[tuple[str, frozenset], float] = defaultdict(float)
    money: dict[tuple[str, frozenset], Decimal] = defaultdict(Decimal)
    latency_sum: dict[tuple[str, frozenset], int] = defaultdict(int)
    for row in UsageMetric.objects.all():
        attempt = {"provider": row.provider, "model": row.model, "tier": row.tier, "user_tier": row.user_tier}
        pm = {"provider": row.provider, "model": row.model}
        ok = not row.error
        outcome = "ok" if ok else "error"
        out[("chimera_requests_total", frozenset({**attempt, "outcome": outcome}.items()))] += 1
        out[("chimera_timeouts_total", frozenset(attempt.items()))] += int(
            not ok and "timeout" in row.error.lower()
        )
        out[("chimera_upstream_rate_limited_total", frozenset(attempt.items()))] += int(
            row.status_code == 429
        )
        out[("chimera_unpriced_requests_total", frozenset(attempt.items()))] += int(
            row.cost_usd is None and not row.cache_hit
        )
        for kind, column in (
            ("input", "input_tokens"),
            ("cached_input", "cached_input_tokens"),
            ("cache_write", "cache_write_tokens"),
            ("output", "output_tokens"),
            ("reasoning", "reasoning_tokens"),
        ):
            out[("chimera_tokens_total", frozenset({**pm, "kind": kind}.items()))] += getattr(row, column)
        money[("chimera_cost_usd_total", frozenset({**pm, "user_tier": row.user_tier}.items()))] += (
            row.cost_usd or Decimal(0)
        )
        out[("chimera_cache_hits_total", frozenset(pm.items()))] += int(row.cache_hit)
        money[("chimera_cache_saved_usd_total", frozenset(pm.items()))] += row.saved_cost_usd or Decimal(0)
        histograms = []
        if ok and not row.cache_hit:
            histograms = [
                ("chimera_request_latency_seconds", row.latency_ms),
                ("chimera_time_to_first_token_seconds", row.ttft_ms),
            ]
            if row.latency_ms is not None:
                latency_sum[("chimera_request_latency_seconds_sum", frozenset(pm.items()))] += row.latency_ms
        elif ok:
            histograms = [("chimera_cache_hit_latency_seconds", row.latency_ms)]
        for name, ms in histograms:
            if ms is None:
                continue
            first = bisect.bisect_left(LATENCY_BUCKETS_MS, ms)
            for i in range(len(LATENCY_BUCKETS_MS) + 1):
                le = str(LATENCY_BUCKETS_MS[i] / 1000) if i < len(LATENCY_BUCKETS_MS) else "+Inf"
                out[(f"{name}_bucket", frozenset({**pm, "le": le}.items()))] += int(i >= first)
    for key, amount in money.items():
        out[key] = float(amount)
    for key, ms in latency_sum.items():
        out[key] = ms / 1000
    for refusal in RateLimitRefusal.objects.all():
        out[("chimera_rate_limit_refusals_total", frozenset({"user_tier": refusal.tier}.items()))] += (
            refusal.count
        )
    return dict(out)


def assert_matches_database(values: dict) -> None:
    want = expected()
    assert want, "no usage to compare"
    for key, value in want.items():
        name, labels = key
        got = select(values, name, **{k: v for k, v in labels})
        assert got == pytest.approx(value, rel=1e-12, abs=1e-12), (name, dict(labels), got, value)
    # Nothing reported beyond the rows: every series of these counters is one the rows explain.
    names = {name for name, _ in want}
    for (name, labels), value in values.items():
        if name in names and value:
            assert (name, labels) in want, (name, dict(labels), value)


def usage_rows(alice, bob) -> None:
    """Several providers, plans, errors, a timeout, a vendor 429, cache hits, an unpriced model."""

    def row(user, **fields):
        defaults = dict(
            provider="groq",
            model="llama-3.3-70b-versatile",
            tier="fast",
            user_tier=user.tier,
            input_tokens=120,
            output_tokens=240,
            cost_usd=Decimal("0.000217"),
            latency_ms=820,
            ttft_ms=140,
        )
        return UsageMetric(user=user, **{**defaults, **fields})

    UsageMetric.objects.bulk_create(
        [
            row(alice),
            row(alice, latency_ms=30, ttft_ms=20, output_tokens=3),
            row(alice, latency_ms=250_000, ttft_ms=61_000),  # past the last bound: +Inf
            row(
                alice,
                error="503 Service Unavailable",
                status_code=503,
                cost_usd=Decimal(0),
                input_tokens=0,
                output_tokens=0,
                latency_ms=90,
            ),
            row(alice, error="first-token timeout after 10s", output_tokens=0, cost_usd=Decimal("0.000012")),
            row(
                bob,
                provider="google",
                model="gemini-2.5-flash",
                tier="balanced",
                error="429 Too Many Requests",
                status_code=429,
                input_tokens=0,
                output_tokens=0,
                cost_usd=Decimal(0),
            ),
            row(
                bob,
                provider="anthropic",
                model="claude-sonnet-4-5",
                tier="powerful",
                input_tokens=900,
                cached_input_tokens=600,
                cache_write_tokens=200,
                output_tokens=500,
                reasoning_tokens=120,
                cost_usd=Decimal("0.012345"),
            ),
            row(
                bob,
                provider="anthropic",
                model="claude-sonnet-4-5",
                tier="powerful",
                cache_hit=True,
                cost_usd=Decimal("0"),
                saved_cost_usd=Decimal("0.004321"),
                latency_ms=400,
                ttft_ms=12,
            ),
            row(alice, provider="ollama", model="qwen3:8b", tier="fast", cost_usd=None),  # unpriced
        ]
    )


@pytest.fixture
def bob_pro(bob):
    bob.tier = "pro"
    bob.save()
    return bob


def test_metrics_are_off_until_a_token_is_set(client, settings):
    settings.CHIMERA_METRICS_TOKEN = ""
    response = scrape(client)
    assert response.status_code == 404
    assert "CHIMERA_METRICS_TOKEN" in response.content.decode()


def test_a_missing_or_wrong_token_is_a_401_that_says_what_to_send_and_never_logs_it(client, settings, caplog):
    settings.CHIMERA_METRICS_TOKEN = TOKEN
    caplog.set_level(logging.DEBUG)
    wrong = [
        {},
        {"HTTP_AUTHORIZATION": "Bearer not-the-token"},
        {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}x"},
        {"HTTP_AUTHORIZATION": f"Basic {TOKEN}"},
        {"HTTP_AUTHORIZATION": "Bearer ünïcode-☃"},
        {"HTTP_AUTHORIZATION": "Bearer"},
    ]
    for headers in wrong:
        response = client.get("/metrics", **headers)
        assert response.status_code == 401, headers
        assert "Authorization: Bearer" in response.content.decode()
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405
    assert TOKEN not in caplog.text


def test_the_counters_equal_the_database_sums(client, settings, alice, bob_pro):
    settings.CHIMERA_METRICS_TOKEN = TOKEN
    usage_rows(alice, bob_pro)
    RateLimitRefusal.objects.create(user=alice, tier="free", hour=timezone.now().replace(minute=0), count=3)
    RateLimitRefusal.objects.create(user=bob_pro, tier="pro", hour=timezone.now().replace(minute=0), count=1)

    response = scrape(client)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    values = samples(response.content.decode())
    assert_matches_database(values)
    # Spot checks that the comparison above covers what it should.
    assert select(values, "chimera_requests_total", outcome="error") == 3
    assert select(values, "chimera_requests_total", provider="groq", outcome="ok") == 3
    assert select(values, "chimera_timeouts_total") == 1
    assert select(values, "chimera_upstream_rate_limited_total", provider="google") == 1
    assert select(values, "chimera_unpriced_requests_total", provider="ollama") == 1
    assert select(values, "chimera_cache_hits_total", provider="anthropic") == 1
    assert select(values, "chimera_rate_limit_refusals_total", user_tier="free") == 3
    total = sum((r.cost_usd or Decimal(0) for r in UsageMetric.objects.all()), Decimal(0))
    assert select(values, "chimera_cost_usd_total") == pytest.approx(float(total), rel=1e-12)
    assert select(values, "chimera_request_latency_seconds_bucket", provider="groq", le="+Inf") == 3
    assert select(values, "chimera_request_latency_seconds_bucket", provider="groq", le="0.05") == 1


def test_the_totals_stay_the_same_when_the_rollups_take_over(client, settings, alice, bob_pro):
    settings.CHIMERA_METRICS_TOKEN = TOKEN
    now = timezone.now()
    for ago in (timedelta(0), timedelta(hours=5), timedelta(days=1, hours=3), timedelta(days=9)):
        before = set(UsageMetric.objects.values_list("id", flat=True))
        usage_rows(alice, bob_pro)
        UsageMetric.objects.exclude(id__in=before).update(created_at=now - ago)

    first = samples(scrape(client).content.decode())
    assert_matches_database(first)

    assert rollups.roll_recent()["hours"] >= 2  # the last two days' closed hours, not the old day
    after_recent = samples(scrape(client).content.decode())
    assert after_recent == first

    rollups.roll_all()
    assert UsageRollup.objects.filter(period="day", start__lt=now - timedelta(days=8)).exists()
    assert samples(scrape(client).content.decode()) == first

    # A row that arrives late in an hour already rolled counts at once (its hour and day are stale).
    before = set(UsageMetric.objects.values_list("id", flat=True))
    usage_rows(alice, bob_pro)
    UsageMetric.objects.exclude(id__in=before).update(created_at=now - timedelta(days=9))
    assert_matches_database(samples(scrape(client).content.decode()))
    # And a user deleted with their rows leaves the totals.
    bob_pro.delete()
    assert_matches_database(samples(scrape(client).content.decode()))


def test_breakers_show_their_state_and_failures(client, settings):
    from providers.base import ProviderError
    from providers.breaker import get_breaker

    settings.CHIMERA_METRICS_TOKEN = TOKEN
    breaker = get_breaker()
    for _ in range(breaker.threshold):
        async_to_sync(breaker.record_failure)("groq", ProviderError("503 Service Unavailable", status=503))
    async_to_sync(breaker.record_failure)("google", ProviderError("503 Service Unavailable", status=503))
    values = samples(scrape(client).content.decode())
    assert values[("chimera_breaker_state", frozenset({("provider", "groq")}))] == 2
    assert (
        values[("chimera_breaker_consecutive_failures", frozenset({("provider", "groq")}))]
        == breaker.threshold
    )
    assert values[("chimera_breaker_state", frozenset({("provider", "google")}))] == 0
    assert values[("chimera_breaker_consecutive_failures", frozenset({("provider", "google")}))] == 1
    assert values[("chimera_breaker_state", frozenset({("provider", "anthropic")}))] == 0


def test_a_breaker_past_its_cooldown_is_half_open(client, settings):
    from providers.base import ProviderError
    from providers.breaker import get_breaker

    settings.CHIMERA_METRICS_TOKEN = TOKEN
    settings.CHIMERA_CATALOG = {"breaker": {"threshold": 2, "cooldown_s": 0}}  # a probe may go at once
    breaker = get_breaker()
    for _ in range(2):
        async_to_sync(breaker.record_failure)("anthropic", ProviderError("529 Overloaded", status=529))
    values = samples(scrape(client).content.decode())
    assert values[("chimera_breaker_state", frozenset({("provider", "anthropic")}))] == 1
    assert values[("chimera_breaker_consecutive_failures", frozenset({("provider", "anthropic")}))] == 2
