"""The circuit breaker: 5 consecutive failures open it, a cooldown half-opens it, one probe decides.

Memory and Redis backends run the same scenarios; the Redis ones use a key prefix of their own.
Time is a clock we advance by hand (the breaker takes a ``clock``), never a sleep.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
import redis.asyncio as aioredis

from providers.adapters import build_provider
from providers.base import ChatMessage, ProviderConfig, ProviderError, ProviderRequest
from providers.breaker import Breaker

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def outage(status: int | None = 503) -> ProviderError:
    return ProviderError("upstream unavailable", provider="groq", status=status)


@pytest.fixture
async def redis_prefix():
    prefix = f"test:{uuid.uuid4().hex}:breaker:"
    yield prefix
    client = aioredis.from_url(REDIS_URL)
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
def make_breaker(request, redis_prefix):
    """Breakers on one backend; on Redis, all made in one test share state (the same prefix)."""
    clock = Clock()

    def make(**kwargs) -> Breaker:
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("cooldown_s", 30)
        kwargs.setdefault("threshold", 5)
        if request.param == "redis":
            return Breaker(redis_url=REDIS_URL, prefix=redis_prefix, cache_s=0, **kwargs)
        return Breaker(redis_url="", **kwargs)

    make.clock = clock
    make.backend = request.param
    return make


async def test_it_opens_after_five_consecutive_failures(make_breaker):
    breaker = make_breaker()
    for _ in range(4):
        await breaker.record_failure("groq", outage())
    assert await breaker.state("groq") == "closed"
    assert await breaker.allow("groq")

    await breaker.record_failure("groq", outage())

    assert await breaker.state("groq") == "open"
    assert not await breaker.allow("groq")
    assert await breaker.state("google") == "closed"


async def test_a_success_resets_the_consecutive_count(make_breaker):
    breaker = make_breaker()
    for _ in range(4):
        await breaker.record_failure("groq", outage())
    await breaker.record_success("groq")
    for _ in range(4):
        await breaker.record_failure("groq", outage())

    assert await breaker.state("groq") == "closed"


async def test_failures_caused_by_the_request_do_not_count(make_breaker):
    breaker = make_breaker()
    for status in (400, 401, 403, 404, 422, 400, 400):
        await breaker.record_failure("groq", outage(status))

    assert await breaker.state("groq") == "closed"
    [snap] = await breaker.snapshot(["groq"])
    assert snap.consecutive_failures == 0


async def test_rate_limits_timeouts_and_server_errors_count(make_breaker):
    breaker = make_breaker()
    for status in (429, 408, 500, 502, None):
        await breaker.record_failure("groq", outage(status))

    assert await breaker.state("groq") == "open"


async def test_a_real_connection_refusal_counts(make_breaker):
    # The real adapter against a port nobody listens on: whatever it raises must open the breaker.
    provider = build_provider(
        ProviderConfig(name="groq", wire="openai_compat", base_url="http://127.0.0.1:9/v1", api_key="k")
    )
    request = ProviderRequest(model="llama-3.1-8b-instant", messages=(ChatMessage("user", "hi"),))
    breaker = make_breaker()
    for _ in range(5):
        with pytest.raises(ProviderError) as caught:
            async for _event in provider.stream(request):
                pass
        assert not caught.value.caused_by_request
        await breaker.record_failure("groq", caught.value)
    await provider.aclose()

    assert await breaker.state("groq") == "open"
    [snap] = await breaker.snapshot(["groq"])
    assert snap.consecutive_failures == 5
    assert snap.last_error


async def test_after_the_cooldown_it_lets_exactly_one_probe_through(make_breaker):
    breaker = make_breaker()
    for _ in range(5):
        await breaker.record_failure("groq", outage())
    make_breaker.clock.advance(29)
    assert await breaker.state("groq") == "open"

    make_breaker.clock.advance(2)

    assert await breaker.state("groq") == "half-open"
    assert await breaker.allow("groq")  # the probe
    assert not await breaker.allow("groq")  # everyone else waits for its verdict
    assert not await breaker.allow("groq")


async def test_a_successful_probe_closes_it(make_breaker):
    breaker = make_breaker()
    for _ in range(5):
        await breaker.record_failure("groq", outage())
    make_breaker.clock.advance(31)
    assert await breaker.allow("groq")

    await breaker.record_success("groq")

    assert await breaker.state("groq") == "closed"
    assert await breaker.allow("groq")
    assert await breaker.allow("groq")


async def test_a_failed_probe_reopens_it_for_another_cooldown(make_breaker):
    breaker = make_breaker()
    for _ in range(5):
        await breaker.record_failure("groq", outage())
    make_breaker.clock.advance(31)
    assert await breaker.allow("groq")

    await breaker.record_failure("groq", outage())

    assert await breaker.state("groq") == "open"
    assert not await breaker.allow("groq")
    make_breaker.clock.advance(31)
    assert await breaker.state("groq") == "half-open"
    assert await breaker.allow("groq")


async def test_the_snapshot_says_what_the_staff_page_needs(make_breaker):
    breaker = make_breaker()
    for _ in range(5):
        await breaker.record_failure("groq", ProviderError("boom", provider="groq", status=503))

    snaps = {s.provider: s for s in await breaker.snapshot(["groq", "google"])}

    assert snaps["groq"].state == "open"
    assert snaps["groq"].consecutive_failures == 5
    assert "503" in snaps["groq"].last_error and "boom" in snaps["groq"].last_error
    assert snaps["groq"].opened_at == make_breaker.clock.now
    assert snaps["google"].as_dict() == {
        "provider": "google",
        "state": "closed",
        "consecutive_failures": 0,
        "last_error": "",
        "opened_at": None,
    }


async def test_two_breakers_on_one_redis_share_the_state(redis_prefix):
    clock = Clock()
    one = Breaker(redis_url=REDIS_URL, prefix=redis_prefix, cache_s=0, clock=clock, cooldown_s=30)
    two = Breaker(redis_url=REDIS_URL, prefix=redis_prefix, cache_s=0, clock=clock, cooldown_s=30)
    for breaker in (one, two, one, two, one):  # consecutive failures seen by different processes
        await breaker.record_failure("groq", outage())

    assert await two.state("groq") == "open"
    assert not await two.allow("groq")

    clock.advance(31)
    assert await one.allow("groq")  # one process gets the probe...
    assert not await two.allow("groq")  # ...and the other does not

    await one.record_success("groq")
    assert await two.state("groq") == "closed"
    assert [s.provider for s in await two.snapshot([]) if s.state != "closed"] == []


async def test_a_cached_closed_state_costs_no_round_trip_but_sees_changes_after_it_expires(redis_prefix):
    clock = Clock()
    reader = Breaker(redis_url=REDIS_URL, prefix=redis_prefix, cache_s=60, clock=clock)
    writer = Breaker(redis_url=REDIS_URL, prefix=redis_prefix, cache_s=0, clock=clock)
    assert await reader.allow("groq")  # reads and caches "closed"
    for _ in range(5):
        await writer.record_failure("groq", outage())

    assert await reader.allow("groq")  # still within the cache window
    reader.cache_s = 0
    assert not await reader.allow("groq")


async def test_the_background_refresh_brings_other_processes_changes_without_a_round_trip(redis_prefix):
    """Each web process reads its cached states again in the background (providers.breaker.start), so a
    turn plans its route with no round trip yet sees another process's failures as soon as before."""
    clock = Clock()
    reader = Breaker(redis_url=REDIS_URL, prefix=redis_prefix, cache_s=60, clock=clock)
    writer = Breaker(redis_url=REDIS_URL, prefix=redis_prefix, cache_s=0, clock=clock)
    assert await reader.state("groq") == "closed"  # read once: now in the reader's cache
    for _ in range(5):  # another process opens it
        await writer.record_failure("groq", outage())
    assert await reader.allow("groq")  # still the cached "closed"

    await asyncio.to_thread(reader.refresh_cached)  # what the refresh thread does

    assert await reader.state("groq") == "open"  # from the cache: no read of the loop's own
    assert not await reader.allow("groq")
    # An entry written after a refresh was sent (this process's own success, say) is newer: it stays.
    await reader.record_success("groq")
    stamped, closed = reader._cache["groq"]
    reader._cache["groq"] = (stamped + 3600, closed)  # written "later" than the next refresh is sent
    await writer.record_failure("groq", outage())
    await asyncio.to_thread(reader.refresh_cached)
    assert reader._cache["groq"] == (stamped + 3600, closed)


async def test_the_refresh_of_an_unreachable_redis_changes_nothing():
    breaker = Breaker(redis_url="redis://127.0.0.1:9/0", prefix="test:unreachable:", cache_s=60)
    assert await breaker.state("groq") == "closed"  # fails open; remembered as closed
    cached = dict(breaker._cache)

    await asyncio.to_thread(breaker.refresh_cached)  # no exception, no change: entries age out as before

    assert breaker._cache == cached


async def test_an_unreachable_redis_fails_open():
    breaker = Breaker(redis_url="redis://127.0.0.1:9/0", prefix="test:unreachable:", cache_s=0)
    for _ in range(6):
        await breaker.record_failure("groq", outage())

    assert await breaker.allow("groq")
    assert await breaker.state("groq") == "closed"


async def test_a_second_server_process_sees_the_same_state(redis_prefix):
    import asyncio
    import subprocess
    import sys

    breaker = Breaker(redis_url=REDIS_URL, prefix=redis_prefix, cache_s=0, cooldown_s=30)
    for _ in range(5):
        await breaker.record_failure("groq", outage())
    script = (
        "import asyncio, sys; from providers.breaker import Breaker; "
        f"b = Breaker(redis_url={REDIS_URL!r}, prefix={redis_prefix!r}, cache_s=0, cooldown_s=30); "
        "print(asyncio.run(b.state('groq')), asyncio.run(b.allow('groq')))"
    )
    other = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
    )
    assert other.stdout.split() == ["open", "False"], other.stderr
