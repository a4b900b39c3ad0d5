"""Each person sees their own usage: this calendar month (UTC) and what is left of their limits, at
GET /api/usage and on their settings page, and never anyone else's."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.api.helpers import chat
from usage import limits, personal
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db

HELLO = {"messages": [{"role": "user", "content": "Hello"}]}


def rows(user, when: datetime, n: int, **fields) -> None:
    """``n`` usage rows of ``user`` stamped ``when``."""
    before = set(UsageMetric.objects.values_list("id", flat=True))
    defaults = dict(
        provider="groq",
        model="llama-3.3-70b-versatile",
        tier="fast",
        user_tier=user.tier,
        input_tokens=130,
        cached_input_tokens=20,
        output_tokens=310,
        reasoning_tokens=40,
        cost_usd=Decimal("0.000317"),
        latency_ms=700,
        ttft_ms=120,
    )
    UsageMetric.objects.bulk_create([UsageMetric(user=user, **{**defaults, **fields}) for _ in range(n)])
    UsageMetric.objects.exclude(id__in=before).update(created_at=when)


def own_month(user, now: datetime) -> dict:
    """The month's figures summed here from the person's rows, in Python."""
    since = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    mine = [
        r
        for r in UsageMetric.objects.filter(user=user)
        if since <= r.created_at < (since + timedelta(days=32)).replace(day=1)
    ]
    cost = sum((r.cost_usd or Decimal(0) for r in mine), Decimal(0))
    return {
        "requests": len(mine),
        "inputTokens": sum(r.input_tokens for r in mine),
        "cachedInputTokens": sum(r.cached_input_tokens for r in mine),
        "outputTokens": sum(r.output_tokens for r in mine),
        "reasoningTokens": sum(r.reasoning_tokens for r in mine),
        "costUsd": f"{cost:.6f}",
    }


@pytest.fixture
def history(alice, bob):
    """alice's rows this month (two days), last month and next month; bob's rows this month."""
    now = timezone.now()
    since = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    rows(alice, since, 2)  # the month's first instant counts
    rows(alice, now, 3, provider="anthropic", model="claude-sonnet-4-5", cost_usd=Decimal("0.012001"))
    rows(alice, since - timedelta(microseconds=1), 4)  # last month's last instant does not
    rows(alice, now, 1, cache_hit=True, cost_usd=Decimal("0"), saved_cost_usd=Decimal("0.000317"))
    rows(alice, now, 1, error="503 Service Unavailable", status_code=503, cost_usd=Decimal("0"))
    rows(bob, now, 5, cost_usd=Decimal("1.000000"), input_tokens=9999)
    return now


def test_the_months_totals_are_the_persons_own_rows_in_utc(alice, bob, history):
    month = personal.month(alice)
    want = own_month(alice, history)
    assert month.total.requests == want["requests"] == 7
    assert month.total.input_tokens == want["inputTokens"]
    assert month.total.cached_input_tokens == want["cachedInputTokens"]
    assert month.total.output_tokens == want["outputTokens"]
    assert month.total.reasoning_tokens == want["reasoningTokens"]
    assert month.total.cost_usd == Decimal(want["costUsd"])
    assert month.total.cost == want["costUsd"]
    assert month.total.errors == 1 and month.total.cache_hits == 1
    # By day: the days with usage, summing to the month.
    assert sum(f.requests for _, f in month.days) == month.total.requests
    assert sum((f.cost_usd for _, f in month.days), Decimal(0)) == month.total.cost_usd
    assert month.days[0][0] == month.since.date()


def test_the_month_boundary_is_midnight_utc_on_the_first():
    since, until = personal.month_bounds(datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
    assert (since, until) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    # 00:30 on the 1st in UTC+2 is still the 30th of the month before in UTC.
    plus_two = datetime(2026, 3, 1, 0, 30, tzinfo=timezone.get_fixed_timezone(120))
    assert personal.month_bounds(plus_two) == (
        datetime(2026, 2, 1, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
    )


def test_a_rows_month_follows_utc_at_the_edges(alice):
    edge = datetime(2026, 2, 1, tzinfo=UTC)
    rows(alice, edge - timedelta(microseconds=1), 1)
    rows(alice, edge, 2)
    rows(alice, datetime(2026, 3, 1, tzinfo=UTC), 4)
    assert personal.month(alice, now=datetime(2026, 1, 15, tzinfo=UTC)).total.requests == 1
    assert personal.month(alice, now=datetime(2026, 2, 28, 23, 59, tzinfo=UTC)).total.requests == 2
    assert personal.month(alice, now=datetime(2026, 3, 1, tzinfo=UTC)).total.requests == 4


# The API reads who is calling on its own threads (chat.db): they see committed rows only.
@pytest.mark.django_db(transaction=True)
def test_get_api_usage_is_the_callers_own_month_and_401_without_auth(client, alice, bob, history):
    from accounts.apikeys import create_api_key

    assert client.get("/api/usage").status_code == 401
    assert client.get("/api/usage", HTTP_AUTHORIZATION="Bearer chk_wrong").status_code == 401

    alice_key = create_api_key(alice, "tests")[1]
    body = client.get("/api/usage", HTTP_AUTHORIZATION=f"Bearer {alice_key}").json()
    want = own_month(alice, history)
    assert {k: body[k] for k in want} == want
    assert body["month"] == f"{history:%Y-%m}"
    assert body["since"].startswith(f"{history:%Y-%m}-01T00:00:00")
    assert Decimal(body["costUsd"]) == sum((Decimal(d["costUsd"]) for d in body["days"]), Decimal(0))

    bob_key = create_api_key(bob, "tests")[1]
    theirs = client.get("/api/usage", HTTP_AUTHORIZATION=f"Bearer {bob_key}").json()
    assert theirs["requests"] == 5 and theirs["costUsd"] == "5.000000" and theirs["inputTokens"] == 5 * 9999

    # The page's session works as well (a GET needs no CSRF token).
    client.force_login(alice)
    assert client.get("/api/usage").json()["requests"] == body["requests"]


def test_the_settings_page_shows_the_same_numbers(client, alice, bob, history):
    client.force_login(alice)
    page = client.get("/accounts/settings/").content.decode()
    shown = dict(re.findall(r'data-usage="(\w+)">\$?([\d.]+)<', page))
    want = own_month(alice, history)
    assert shown == {
        "requests": str(want["requests"]),
        "input": str(want["inputTokens"]),
        "cached": str(want["cachedInputTokens"]),
        "output": str(want["outputTokens"]),
        "reasoning": str(want["reasoningTokens"]),
        "cost": want["costUsd"],
    }
    assert "9999" not in page  # bob's rows


def _limits_on_page(client) -> dict:
    page = client.get("/accounts/settings/").content.decode()
    out = {}
    for window, limit, remaining in re.findall(
        r'data-window="(\w+)">.*?data-limit="limit">(\d+)<.*?data-limit="remaining">(\d+)<', page, re.S
    ):
        out[window] = (int(limit), int(remaining))
    return out


@pytest.mark.django_db(transaction=True)
def test_what_is_left_of_the_limits_goes_down_with_a_message_and_not_with_looking(
    server_with, emu, http, alice, alice_key, client
):
    server = server_with(flags={"rateLimit": {"freeBurst": 4, "freeLimit": 9}, "enableCaching": False})
    headers = {"Authorization": f"Bearer {alice_key}"}

    def limits() -> dict:
        response = http.get(server.url + "/api/usage", headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["rateLimits"]["state"] == "on" and body["rateLimits"]["plan"] == "free"
        return {w["window"]: w for w in body["rateLimits"]["windows"]}

    first = limits()
    assert (first["burst"]["limit"], first["burst"]["remaining"]) == (4, 4)
    assert (first["quota"]["limit"], first["quota"]["remaining"]) == (9, 9)
    assert 0 < first["burst"]["resetSeconds"] <= first["burst"]["periodSeconds"] == 60
    assert limits()["burst"]["remaining"] == 4  # looking uses none

    response, _ = chat(http, server.url, HELLO, alice_key)
    assert response.status_code == 200 and response.headers["x-ratelimit-remaining"] == "3"
    after = limits()
    assert after["burst"]["remaining"] == 3 and after["quota"]["remaining"] == 8
    answer = http.get(server.url + "/api/usage", headers=headers)
    assert answer.headers["x-ratelimit-remaining"] == "3" and answer.headers["x-ratelimit-limit"] == "4"
    assert answer.json()["requests"] == UsageMetric.objects.filter(user=alice).count() >= 1


# The API reads who is calling on its own threads (chat.db): they see committed rows only.
@pytest.mark.django_db(transaction=True)
def test_limits_switched_off_are_said_so(client, alice):
    from flags import runtime

    runtime.set_flags({"rateLimit": {"enabled": False}})
    client.force_login(alice)
    assert client.get("/api/usage").json()["rateLimits"] == {"state": "off", "plan": "free", "windows": []}
    assert "Rate limits are switched off." in client.get("/accounts/settings/").content.decode()


# The API reads who is calling on its own threads (chat.db): they see committed rows only.
@pytest.mark.django_db(transaction=True)
def test_the_settings_page_shows_the_limits_as_they_stand(client, alice):
    from flags import runtime

    runtime.set_flags({"rateLimit": {"freeBurst": 7, "freeLimit": 50}})
    client.force_login(alice)
    assert _limits_on_page(client) == {"burst": (7, 7), "quota": (50, 50)}
    assert _limits_on_page(client) == {"burst": (7, 7), "quota": (50, 50)}  # looking uses none
    # A message counted as the chat counts it (the same counters, in this process's cache).
    limits.check_sync(alice, limits.limit_for(alice, runtime.get_flags()))
    assert _limits_on_page(client) == {"burst": (7, 6), "quota": (50, 49)}
    api = {w["window"]: w["remaining"] for w in client.get("/api/usage").json()["rateLimits"]["windows"]}
    assert api == {"burst": 6, "quota": 49}
