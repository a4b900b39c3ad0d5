"""Usage rows, cost in Decimal, and the dashboard (the alert rules: test_alerts.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from providers.events import AttemptFinished, Usage
from usage import recording
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db


def _rows(user, n, **fields):
    defaults = dict(
        provider="groq",
        model="llama-3.3-70b-versatile",
        input_tokens=100,
        output_tokens=200,
        cost_usd=Decimal("0.000217"),
        latency_ms=800,
        ttft_ms=150,
    )
    UsageMetric.objects.bulk_create([UsageMetric(user=user, **{**defaults, **fields}) for _ in range(n)])


def test_an_attempt_is_priced_in_decimal_from_the_catalog(alice):
    attempt = AttemptFinished(
        provider="groq",
        model="llama-3.3-70b-versatile",
        usage=Usage(input_tokens=1_000_000, output_tokens=1_000_000),
        latency_ms=10,
        ttft_ms=5,
    )
    [row] = recording.record_attempts(
        user_id=alice.id,
        message_id=None,
        conversation_id=None,
        tier="balanced",
        trace_id="t",
        priced=recording.price([attempt]),
    )
    row.refresh_from_db()
    assert isinstance(row.cost_usd, Decimal) and row.cost_usd > 0
    assert row.cost_usd == recording.attempt_cost(attempt)


def test_the_dashboard_is_for_staff_and_shows_percentiles_and_cost(client, alice, staff):
    _rows(alice, 10)
    client.force_login(alice)
    assert client.get(reverse("usage:dashboard")).status_code == 302
    client.force_login(staff)
    page = client.get(reverse("usage:dashboard")).content.decode()
    assert "llama-3.3-70b-versatile" in page and "0.0022" in page and "800" in page
    for hours in ("abc", "²", "99999999999999999999999", "-1"):  # not a number a person means: the default
        assert client.get(reverse("usage:dashboard") + f"?hours={hours}").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_staff_see_each_providers_breaker_state_and_last_error(client, staff, alice, emu, settings):
    from asgiref.sync import async_to_sync

    from providers.base import ProviderError
    from providers.breaker import get_breaker

    breaker = get_breaker()
    for _ in range(5):
        async_to_sync(breaker.record_failure)("groq", ProviderError("503 Service Unavailable", status=503))
    _rows(alice, 4, provider="groq", error="503 Service Unavailable")
    client.force_login(staff)
    page = client.get(reverse("usage:dashboard") + "?live=1").content.decode()
    assert 'data-provider="groq" data-state="open"' in page
    assert "503 Service Unavailable" in page and "1 of 4" in page
    assert 'data-provider="google" data-state="closed"' in page


def test_the_dashboard_shows_what_the_cache_saved(client, staff, alice):
    from providers.catalog import cost_of

    _rows(alice, 3, cost_usd=Decimal("0"), cache_hit=True, latency_ms=12)
    client.force_login(staff)
    page = client.get(reverse("usage:dashboard")).content.decode()
    one = cost_of("groq", "llama-3.3-70b-versatile", Usage(input_tokens=100, output_tokens=200))
    assert f'data-testid="cache-savings">${3 * one:.4f}' in page and "cached answers p50 12 ms" in page


def test_staff_see_how_much_of_the_cost_was_estimated_and_can_filter_those_rows(client, alice, staff):
    _rows(alice, 3)  # reported: 3 x $0.000217
    _rows(alice, 1, cost_usd=Decimal("0.001000"), output_estimated=True, error="stream cut")
    client.force_login(staff)
    page = client.get(reverse("usage:dashboard")).content.decode()
    assert "$0.0010</span> (61 %) is" in page  # 0.001 of 0.001651

    admin = client.get(reverse("admin:usage_usagemetric_changelist") + "?output_estimated__exact=1")
    assert admin.status_code == 200
    listed = admin.content.decode()
    assert "output estimated" in listed and listed.count("stream cut") == 1
    everything = client.get(reverse("admin:usage_usagemetric_changelist")).content.decode()
    assert everything.count(">reported<") == 3


def test_cache_writes_are_priced_as_the_vendor_prices_them():
    from providers.catalog import cost_of

    plain = cost_of("anthropic", "claude-haiku-4-5", Usage(input_tokens=1000, output_tokens=0))
    written = cost_of(
        "anthropic", "claude-haiku-4-5", Usage(input_tokens=1000, output_tokens=0, cache_write_tokens=1000)
    )
    read = cost_of(
        "anthropic", "claude-haiku-4-5", Usage(input_tokens=1000, output_tokens=0, cached_input_tokens=1000)
    )
    assert (plain, written, read) == (Decimal("0.001"), Decimal("0.00125"), Decimal("0.0001"))
