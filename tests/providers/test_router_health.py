"""The staff health rows: what is configured, what each breaker says, and a live check on demand."""

from __future__ import annotations

from providers.breaker import Breaker
from providers.health import provider_health


async def test_health_rows_show_config_breaker_state_and_live_checks(settings, emu):
    settings.CHIMERA_EMULATOR_URL = emu.url
    breaker = Breaker(redis_url="", cache_s=0)
    for _ in range(5):
        await breaker.record_failure("groq")

    rows = {row["provider"]: row for row in await provider_health(live=True, breaker=breaker)}

    assert {"groq", "google", "anthropic", "gateway", "local"} <= set(rows)
    assert rows["groq"]["state"] == "open" and rows["groq"]["consecutive_failures"] == 5
    assert rows["google"]["state"] == "closed"
    assert rows["google"]["wire"] == "gemini" and rows["google"]["base_url"] == f"{emu.url}/gemini"
    assert rows["groq"]["healthy"] is True  # reachable; the breaker speaks for recent failures
    assert all(row["healthy"] is True for row in rows.values())


async def test_without_live_checks_nothing_is_called(settings, emu):
    settings.CHIMERA_EMULATOR_URL = emu.url

    rows = await provider_health(breaker=Breaker(redis_url=""))

    assert all(row["healthy"] is None for row in rows)
    assert emu.requests() == []
