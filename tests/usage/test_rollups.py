"""Hourly and daily rollups: equal to the raw rows, idempotent, re-rolled when a row arrives late."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from providers.events import AttemptFinished, Usage
from usage import recording, rollups
from usage.models import UsageMetric, UsageRollup

pytestmark = pytest.mark.django_db

FIELDS = (*rollups.COUNT_FIELDS, *rollups.TOKEN_FIELDS, *rollups.MONEY_FIELDS, "latency_sum_ms")


def row(user, hours_ago: float, **fields) -> UsageMetric:
    defaults = dict(
        provider="groq",
        model="llama-3.3-70b-versatile",
        tier="fast",
        user_tier=user.tier,
        input_tokens=1200,
        cached_input_tokens=200,
        output_tokens=300,
        reasoning_tokens=0,
        cost_usd=Decimal("0.000945"),
        latency_ms=850,
        ttft_ms=120,
    )
    created = UsageMetric.objects.create(user=user, **{**defaults, **fields})
    at = timezone.now() - timedelta(hours=hours_ago)
    UsageMetric.objects.filter(pk=created.pk).update(created_at=at)
    created.refresh_from_db()
    return created


@pytest.fixture
def history(alice, bob):
    bob.tier = "pro"
    bob.save()
    for h in range(30):  # thirty hours of mixed traffic
        row(alice, h + 0.5)
        row(bob, h + 0.25, provider="google", model="gemini-2.5-pro", tier="reasoning", reasoning_tokens=90,
            cost_usd=Decimal("0.004410"), latency_ms=2400 + 10 * h, ttft_ms=900)  # fmt: skip
        if h % 3 == 0:
            row(alice, h + 0.75, error="503 from groq", status_code=503, cost_usd=Decimal(0), latency_ms=40)
        if h % 4 == 0:
            row(alice, h + 0.6, error="first token timeout after 15s", cost_usd=Decimal("0.000708"))
        if h % 5 == 0:
            row(bob, h + 0.1, status_code=429, error="429 Too Many Requests", cost_usd=Decimal(0))
        if h % 2 == 0:
            row(alice, h + 0.4, cache_hit=True, cost_usd=Decimal(0), saved_cost_usd=Decimal("0.000945"),
                latency_ms=15)  # fmt: skip
        if h == 7:
            row(alice, h + 0.3, model="unlisted-model", cost_usd=None)


def raw_totals(since, until) -> dict:
    sums = rollups.total(
        rollups.group(UsageMetric.objects.filter(created_at__gte=since, created_at__lt=until))
    )
    return {name: getattr(sums, name) for name in FIELDS}


def rolled(period: str) -> dict:
    sums = rollups.total(((), r) for r in UsageRollup.objects.filter(period=period))
    return {name: getattr(sums, name) for name in FIELDS}


def test_rollups_equal_the_raw_rows_by_hour_and_day_and_by_every_group(history):
    now = timezone.now()
    closed = rollups.floor_hour(now)
    hours = {
        rollups.floor_hour(t)
        for t in UsageMetric.objects.filter(created_at__lt=closed).values_list("created_at", flat=True)
    }
    done = rollups.roll_recent(now)
    assert (
        done == {"hours": len(hours), "days": len({rollups.floor_day(h) for h in hours})} and len(hours) >= 29
    )
    start = closed - timedelta(days=2)
    expected = raw_totals(start, closed)
    assert expected["requests"] > 60 and expected["cost_usd"] > 0
    assert rolled("hour") == expected
    assert rolled("day") == expected
    # Per group: provider, model, model tier and the account's plan.
    raw = rollups.merge(
        rollups.group(UsageMetric.objects.filter(created_at__lt=closed)), rollups.GROUP_FIELDS
    )
    stored = rollups.merge(
        ((r.__dict__, r) for r in UsageRollup.objects.filter(period="hour")), rollups.GROUP_FIELDS
    )
    assert raw.keys() == stored.keys() and {k[3] for k in raw} == {"free", "pro"}
    for key, sums in raw.items():
        assert {n: getattr(sums, n) for n in FIELDS} == {n: getattr(stored[key], n) for n in FIELDS}, key
        assert sums.latency_buckets == stored[key].latency_buckets
    counts, closed_rows = rolled("hour"), UsageMetric.objects.filter(created_at__lt=closed)
    assert counts["timeouts"] == closed_rows.filter(error__contains="timeout").count() >= 7
    assert counts["rate_limited"] == closed_rows.filter(status_code=429).count() >= 5
    assert counts["unpriced"] == closed_rows.filter(cost_usd=None).count() == 1
    assert counts["cache_hits"] == closed_rows.filter(cache_hit=True).count() >= 14


def test_rolling_twice_changes_nothing_and_a_late_row_re_rolls_its_hour(history, alice):
    now = timezone.now()
    rollups.roll_recent(now)
    before = sorted(
        UsageRollup.objects.values_list(
            "period", "start", "provider", "model", "user_tier", "requests", "cost_usd"
        )
    )
    assert rollups.roll_recent(now) == {"hours": 0, "days": 0}  # nothing stale
    for hour in {r[1] for r in before if r[0] == "hour"}:
        rollups.roll_hour(hour)  # forced: the same rows again
    after = sorted(
        UsageRollup.objects.values_list(
            "period", "start", "provider", "model", "user_tier", "requests", "cost_usd"
        )
    )
    assert after == before

    late = row(alice, 5.5, cost_usd=Decimal("0.123456"))  # committed after its hour was rolled
    gone = UsageMetric.objects.filter(provider="google").order_by("created_at").first()
    gone.delete()  # and a row deleted with its account, say
    stale = {rollups.floor_hour(late.created_at), rollups.floor_hour(gone.created_at)}
    assert len(stale) == 2
    assert rollups.roll_recent(now) == {"hours": 2, "days": len({rollups.floor_day(h) for h in stale})}
    closed = rollups.floor_hour(now)
    assert rolled("hour") == raw_totals(closed - timedelta(days=2), closed)
    assert rolled("day") == raw_totals(closed - timedelta(days=2), closed)


def test_sums_between_reads_rollups_for_closed_hours_and_raw_rows_for_the_rest(history, alice):
    now = timezone.now()
    rollups.roll_recent(now)
    row(alice, 0.01, cost_usd=Decimal("0.5"))  # this hour: only in the raw rows
    since = now - timedelta(hours=30)
    pairs = list(rollups.sums_between(since, now + timedelta(seconds=1)))
    expected = raw_totals(since, now + timedelta(seconds=1))
    assert {n: getattr(rollups.total(pairs), n) for n in FIELDS} == expected
    by_hour = rollups.merge(rollups.sums_between(since, now + timedelta(seconds=1), by="hour"), ["start"])
    assert sum(s.requests for s in by_hour.values()) == expected["requests"]
    assert len(by_hour) == len(
        {
            rollups.floor_hour(t)
            for t in UsageMetric.objects.filter(created_at__gte=since).values_list("created_at", flat=True)
        }
    )  # one bucket per hour with usage, rolled or raw


def test_usage_rows_carry_the_accounts_plan(alice, bob):
    bob.tier = "pro"
    bob.save()
    attempt = AttemptFinished(
        provider="groq", model="llama-3.3-70b-versatile", usage=Usage(1000, 100), latency_ms=10, ttft_ms=5
    )
    for user in (alice, bob):
        recording.record_attempts(
            user_id=user.id,
            message_id=None,
            conversation_id=None,
            tier="fast",
            trace_id="t",
            priced=recording.price([attempt]),
        )
    assert dict(UsageMetric.objects.values_list("user__username", "user_tier")) == {
        "alice": "free",
        "bob": "pro",
    }
    cost = UsageMetric.objects.first().cost_usd
    assert cost == recording.stored(cost) and cost.as_tuple().exponent >= -6


def test_percentiles_from_a_histogram_fall_in_the_right_bucket():
    h = rollups.empty_histogram()
    for ms in [90] * 50 + [450] * 45 + [4000] * 5:
        h[rollups.bucket_of(ms)] += 1
    assert 50 <= rollups.histogram_percentile(h, 50) <= 100
    assert 300 <= rollups.histogram_percentile(h, 95) <= 500
    assert 3000 <= rollups.histogram_percentile(h, 99) <= 5000
    assert rollups.histogram_percentile(rollups.empty_histogram(), 50) is None
