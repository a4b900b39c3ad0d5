"""The monitoring dashboard: its range picker, its charts' numbers (as CSV, as tables), and that the
figures read from the hourly rollups equal the raw usage rows'."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import Count, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from usage import dashboard, rollups
from usage.models import UsageMetric, UsageRollup

pytestmark = pytest.mark.django_db

URL = "/usage/dashboard/"
DEFAULTS = dict(
    provider="groq",
    model="llama-3.3-70b-versatile",
    tier="fast",
    user_tier="free",
    input_tokens=100,
    output_tokens=200,
    cost_usd=Decimal("0.000217"),
    latency_ms=800,
    ttft_ms=150,
)


def add_rows(user, n: int, at: datetime, **fields) -> list[UsageMetric]:
    """``n`` usage rows created at ``at`` (created_at is auto_now_add: set after the insert)."""
    rows = UsageMetric.objects.bulk_create(
        [UsageMetric(user=user, **{**DEFAULTS, **fields}) for _ in range(n)]
    )
    UsageMetric.objects.filter(pk__in=[r.pk for r in rows]).update(created_at=at)
    return rows


def traffic(alice, bob, now: datetime) -> None:
    """A few hours of mixed traffic: two providers, two plans, errors, timeouts, 429s, cache hits."""
    for hours_ago in range(1, 7):
        at = now - timedelta(hours=hours_ago, minutes=7)
        add_rows(alice, hours_ago, at, cost_usd=Decimal("0.000217") * hours_ago, latency_ms=300 * hours_ago)
        add_rows(bob, 2, at, provider="google", model="gemini-2.5-flash", user_tier="pro",
                 cost_usd=Decimal("0.001003"), input_tokens=1000, output_tokens=50, latency_ms=2200)  # fmt: skip
    add_rows(
        alice, 2, now - timedelta(hours=2, minutes=30), error="Request timeout after 30 s", cost_usd=None
    )
    add_rows(bob, 1, now - timedelta(hours=3, minutes=30), error="429 Too Many Requests", status_code=429,
             provider="google", model="gemini-2.5-flash", user_tier="pro")  # fmt: skip
    add_rows(alice, 3, now - timedelta(hours=4, minutes=30), cache_hit=True, cost_usd=Decimal("0"),
             saved_cost_usd=Decimal("0.000217"), latency_ms=12)  # fmt: skip
    add_rows(alice, 2, now - timedelta(minutes=3))  # this hour: read raw


def read_csv(client, chart: str, **params) -> list[dict]:
    response = client.get(URL, {**params, "format": "csv", "chart": chart})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def raw_sums(by, *fields, **filters) -> dict[tuple, dict]:
    """The database's own sums of the raw usage rows per bucket start and ``fields``."""
    trunc = TruncHour if by == "hour" else TruncDay
    rows = (
        UsageMetric.objects.filter(**filters)
        .annotate(start=trunc("created_at", tzinfo=UTC))
        .values("start", *fields)
        .annotate(
            n=Count("id"),
            cost=Sum("cost_usd"),
            saved=Sum("saved_cost_usd"),
            inp=Sum("input_tokens"),
            out=Sum("output_tokens"),
        )
        .order_by()
    )
    return {
        (dashboard.iso(r["start"]), *(r[f] for f in fields)): {
            "requests": r["n"],
            "cost_usd": Decimal(r["cost"] or 0).quantize(rollups.MICRO),
            "saved_cost_usd": Decimal(r["saved"] or 0).quantize(rollups.MICRO),
            "input_tokens": r["inp"],
            "output_tokens": r["out"],
        }
        for r in rows
    }


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.mark.parametrize(
    ("preset", "bucket"), [("1h", "hour"), ("24h", "hour"), ("7d", "day"), ("30d", "day")]
)
def test_each_preset_draws_every_chart_per_hour_up_to_48_hours_and_per_day_beyond(
    staff_client, alice, preset, bucket
):
    add_rows(alice, 3, timezone.now() - timedelta(minutes=5))
    response = staff_client.get(URL, {"range": preset})
    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-bucket="{bucket}"' in page and f'href="?range={preset}"' in page
    assert re.search(rf'href="\?range={preset}"[^>]*aria-current="page"', page)
    for name in dashboard.CHARTS:
        assert f'data-dashboard-chart="{name}"' in page
        assert f"?range={preset}&amp;format=csv&amp;chart={name}" in page  # its CSV, the same range
    # Each drawn chart's numbers travel as JSON (no inline script: the CSP allows none).
    payloads = [json.loads(m) for m in re.findall(r'<script type="application/json">(.*?)</script>', page)]
    assert {len(p["labels"]) for p in payloads} == {len(response.context["window"].starts())}
    assert response.context["window"].bucket == bucket


def test_a_custom_range_shows_the_hours_asked_for_and_its_csv_keeps_them(staff_client, alice):
    now = timezone.now()
    inside = now - timedelta(hours=5, minutes=10)
    add_rows(alice, 4, inside)
    add_rows(alice, 7, now - timedelta(hours=30))  # before the range
    since = rollups.floor_hour(now - timedelta(hours=8))
    until = rollups.floor_hour(now - timedelta(hours=2))
    params = {
        "range": "custom",
        "from": since.strftime("%Y-%m-%dT%H:%M"),
        "to": until.strftime("%Y-%m-%dT%H:%M"),
    }
    response = staff_client.get(URL, params)
    assert response.status_code == 200
    window = response.context["window"]
    assert (window.since, window.until, window.bucket) == (since, until, "hour")
    assert len(window.starts()) == 6
    page = response.content.decode()
    assert f'value="{params["from"]}"' in page and f'value="{params["to"]}"' in page
    rows = read_csv(staff_client, "tokens", **params)
    assert [(r["start"], r["requests"]) for r in rows] == [(dashboard.iso(rollups.floor_hour(inside)), "4")]
    # A custom range of three days is drawn per day; an offset is read as what it says, in UTC.
    three_days = {"range": "custom", "from": (now - timedelta(days=3)).isoformat(), "to": now.isoformat()}
    assert staff_client.get(URL, three_days).context["window"].bucket == "day"
    shifted = staff_client.get(
        URL, {**params, "from": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") + "+02:00"}
    )
    assert shifted.context["window"].since == since - timedelta(hours=2)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"range": "90m"}, "Unknown range"),
        ({"range": "custom"}, "needs both a start"),
        ({"range": "custom", "from": "2026-01-01T00:00"}, "needs both a start"),
        ({"range": "custom", "from": "yesterday", "to": "2026-01-01T00:00"}, "is not a date and time"),
        ({"range": "custom", "from": "2026-13-45T99:99", "to": "2026-01-01T00:00"}, "is not a date and time"),
        ({"range": "custom", "from": "2025-06-02T00:00", "to": "2025-06-01T00:00"}, "must be before its end"),
        ({"range": "custom", "from": "2025-06-01T00:00", "to": "2025-06-01T00:00"}, "must be before its end"),
        ({"range": "custom", "from": "2020-01-01T00:00", "to": "2025-01-01T00:00"}, "at most 366 days"),
        ({"range": "custom", "from": "9999-12-31T23:59", "to": "9999-12-31T23:59"}, "in the future"),
        ({"range": "custom", "from": "0001-01-01T00:00", "to": "9999-01-01T00:30"}, "at most 366 days"),
        ({"range": "custom", "from": "2025-W01-1", "to": "2025-01-01T00:00"}, "is not a date and time"),
        ({"range": "custom", "from": "2025-01-01T00:00", "to": "9999-12-31T23:59-05:00"}, "is not a date"),
        ({"range": "custom", "from": "0001-01-01T00:00+05:00", "to": "2025-01-01T00:00"}, "is not a date"),
        ({"range": "custom", "from": "2025-01-01T00:00", "to": "2025-01-01T25:00"}, "is not a date and time"),
        ({"range": "custom", "from": "2" * 5000, "to": "2025-01-01T00:00"}, "is not a date and time"),
        ({"range": "custom", "from": "2025-01-01T00:00\x00", "to": "2025-01-01T01:00"}, "is not a date"),
    ],
)
def test_a_bad_range_answers_400_with_a_message_never_a_500(staff_client, params, message):
    response = staff_client.get(URL, params)
    assert response.status_code == 400
    page = response.content.decode()
    assert 'data-testid="range-error"' in page and message in page
    assert 'data-testid="range-form"' in page  # the picker is there to try again
    as_csv = staff_client.get(URL, {**params, "format": "csv", "chart": "cost"})
    assert as_csv.status_code == 400 and message in as_csv.content.decode()


@pytest.mark.parametrize("hours", ["abc", "²", "99999999999999999999999", "-1", "0", "721"])
def test_the_older_hours_parameter_still_works_and_falls_back_on_nonsense(staff_client, hours):
    response = staff_client.get(URL, {"hours": hours})
    assert response.status_code == 200 and response.context["window"].preset == dashboard.DEFAULT_PRESET


def test_the_older_hours_parameter_keeps_its_range_in_the_csv_links(staff_client, alice):
    add_rows(alice, 2, timezone.now() - timedelta(hours=5, minutes=30))
    add_rows(alice, 3, timezone.now() - timedelta(hours=7, minutes=30))
    response = staff_client.get(URL, {"hours": "6"})
    assert response.context["window"].until - response.context["window"].since == timedelta(hours=6)
    [link] = [c.csv_url for c in response.context["charts"] if c.name == "tokens"]
    assert link.startswith("?hours=6&")
    rows = list(csv.DictReader(io.StringIO(staff_client.get(URL + link).content.decode())))
    assert sum(int(r["requests"]) for r in rows) == 2


def test_an_unknown_chart_has_no_csv(staff_client):
    response = staff_client.get(URL, {"format": "csv", "chart": "horoscope"})
    assert response.status_code == 400 and "Unknown chart" in response.content.decode()


def test_people_who_are_not_staff_see_neither_the_dashboard_nor_its_csv(client, alice):
    for who in (None, alice):
        if who:
            client.force_login(who)
        for params in ({}, {"range": "7d"}, {"format": "csv", "chart": "cost"}):
            response = client.get(URL, params)
            assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_cost_and_token_csv_equal_the_database_sums(staff_client, alice, bob):
    now = timezone.now()
    traffic(alice, bob, now)
    expected = raw_sums("hour", "provider", "model", "user_tier")
    cost = read_csv(staff_client, "cost", range="24h")
    tokens = read_csv(staff_client, "tokens", range="24h")
    assert len(cost) == len(tokens) == len(expected)
    for row in cost:
        want = expected[(row["start"], row["provider"], row["model"], row["user_tier"])]
        assert int(row["requests"]) == want["requests"]
        assert Decimal(row["cost_usd"]) == want["cost_usd"]  # exact, not a float's rounding
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00Z", row["start"])
    for row in tokens:
        want = expected[(row["start"], row["provider"], row["model"], row["user_tier"])]
        assert (int(row["input_tokens"]), int(row["output_tokens"])) == (
            want["input_tokens"],
            want["output_tokens"],
        )
        assert int(row["tokens"]) == want["input_tokens"] + want["output_tokens"]
    assert sum(Decimal(r["cost_usd"]) for r in cost) == Decimal(
        UsageMetric.objects.aggregate(c=Sum("cost_usd"))["c"]
    ).quantize(rollups.MICRO)
    # The same numbers per day for a long range.
    per_day = raw_sums("day", "provider", "model", "user_tier")
    daily = read_csv(staff_client, "cost", range="30d")
    assert {
        (r["start"], r["provider"], r["model"], r["user_tier"]): Decimal(r["cost_usd"]) for r in daily
    } == {k: v["cost_usd"] for k, v in per_day.items()}
    assert all(r["start"].endswith("T00:00:00Z") for r in daily)


def test_the_rate_and_cache_csv_count_errors_timeouts_429s_and_savings(staff_client, alice, bob):
    traffic(alice, bob, timezone.now())
    errors = read_csv(staff_client, "errors", range="24h")
    by_start: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    for m in UsageMetric.objects.annotate(start=TruncHour("created_at", tzinfo=UTC)):
        b = by_start[dashboard.iso(m.start)]
        b["requests"] += 1
        b["errors"] += bool(m.error)
        b["timeouts"] += "timeout" in m.error.lower()
        b["rate_limited"] += m.status_code == 429
        b["cache_hits"] += m.cache_hit
        b["saved"] += m.saved_cost_usd or 0
    assert {r["start"] for r in errors} == set(by_start)
    for r in errors:
        b = by_start[r["start"]]
        assert [int(r[k]) for k in ("requests", "errors", "timeouts", "rate_limited")] == [
            b["requests"], b["errors"], b["timeouts"], b["rate_limited"]
        ]  # fmt: skip
        assert float(r["error_rate"]) == pytest.approx(b["errors"] / b["requests"], abs=1e-6)
    assert sum(int(r["timeouts"]) for r in errors) == 2 and sum(int(r["rate_limited"]) for r in errors) == 1
    cache = read_csv(staff_client, "cache", range="24h")
    assert sum(Decimal(r["saved_cost_usd"]) for r in cache) == Decimal("0.000651")
    assert sum(int(r["cache_hits"]) for r in cache) == 3
    [hits] = read_csv(staff_client, "cached_latency", range="24h")
    assert hits["cache_hits"] == "3" and int(hits["p50_ms"]) <= 25  # 12 ms, in the first bucket


def test_rollup_backed_figures_agree_with_the_raw_rows(staff_client, alice, bob):
    now = timezone.now()
    traffic(alice, bob, now)
    add_rows(
        bob, 5, now - timedelta(hours=26), provider="anthropic", model="claude-haiku-4-5", latency_ms=4100
    )
    result = rollups.roll_recent()
    assert result["hours"] >= 7 and UsageRollup.objects.filter(period="hour").exists()
    since = now - timedelta(days=2)
    assert rollups.stale_hours(since, rollups.floor_hour(now)) == []  # closed hours come from the rollups
    keys = (*rollups.GROUP_FIELDS, "start")
    for by in ("hour", "day"):
        from_rollups = rollups.merge(rollups.sums_between(since, now, by=by), keys)
        from_raw = rollups.merge(
            rollups.sums_between(since, now, by=by, rows=UsageMetric.objects.all()), keys
        )
        assert from_rollups == from_raw  # every count, token, Decimal and histogram bucket
    # The page's CSV (rollups for closed hours, raw for this one) against a plain aggregate of the rows.
    for chart, by, rng in (("cost", "hour", "24h"), ("cost", "day", "7d")):
        expected = raw_sums(
            by,
            "provider",
            "model",
            "user_tier",
            created_at__gte=now - timedelta(hours=24) if rng == "24h" else since,
        )
        rows = read_csv(staff_client, chart, range=rng)
        got = {
            (r["start"], r["provider"], r["model"], r["user_tier"]): (
                int(r["requests"]),
                Decimal(r["cost_usd"]),
            )
            for r in rows
        }
        assert got == {k: (v["requests"], v["cost_usd"]) for k, v in expected.items()}
    latency = read_csv(staff_client, "latency", range="7d")
    raw_latency = rollups.merge(
        rollups.sums_between(now - timedelta(days=7), now, by="day", rows=UsageMetric.objects.all()),
        ("start", "provider", "model"),
    )
    for r in latency:
        s = raw_latency[(datetime.fromisoformat(r["start"]), r["provider"], r["model"])]
        assert (int(r["p50_ms"]), int(r["p95_ms"]), int(r["p99_ms"])) == (
            s.percentile(50),
            s.percentile(95),
            s.percentile(99),
        )


def test_the_tables_show_the_same_numbers_as_the_csv(staff_client, alice, bob):
    traffic(alice, bob, timezone.now())
    response = staff_client.get(URL, {"range": "24h"})
    [cost] = [c for c in response.context["charts"] if c.name == "cost"]
    rows = read_csv(staff_client, "cost", range="24h")
    assert [list(r.values()) for r in rows] == cost.cells()
    page = response.content.decode()
    for cells in cost.cells():
        assert "".join(f"<td>{v}</td>" for v in cells) in page
    assert cost.points() > 0 and all(d["data"] for d in cost.datasets)


def test_an_empty_range_says_so_instead_of_drawing(staff_client):
    page = staff_client.get(URL, {"range": "1h"}).content.decode()
    assert page.count("No usage in this range.") >= len(dashboard.CHARTS)
    assert "<canvas" not in page


@pytest.mark.parametrize(
    ("start", "end"), [("0001-01-01T00:00", "0001-01-03T00:00"), ("1999-12-31T23:00", "2000-01-01T01:00")]
)
def test_a_range_long_ago_shows_nothing_rather_than_failing(staff_client, alice, start, end):
    add_rows(alice, 1, timezone.now() - timedelta(minutes=5))
    response = staff_client.get(URL, {"range": "custom", "from": start, "to": end})
    assert response.status_code == 200 and response.context["requests"] == 0
    assert read_csv(staff_client, "cost", range="custom", **{"from": start, "to": end}) == []
