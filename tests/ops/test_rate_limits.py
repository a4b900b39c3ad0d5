"""Rate limits by plan: a burst window and a daily quota, counted in the shared cache (Redis), told
to API clients in X-RateLimit-* headers, with Retry-After on a 429, and refusals counted."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest
from django.urls import reverse

from flags import runtime
from tests.api.helpers import chat
from tests.conftest import start_live_server
from usage.models import RateLimitRefusal

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = {"messages": [{"role": "user", "content": "Hello"}]}


def test_the_burst_window_then_the_daily_quota_refuse_and_say_when(server_with, emu, http, alice, alice_key):
    server = server_with(flags={"rateLimit": {"freeBurst": 3, "freeLimit": 5}, "enableCaching": False})
    seen = []
    for _ in range(3):
        response, _ = chat(http, server.url, HELLO, alice_key)
        assert response.status_code == 200
        seen.append(response.headers["x-ratelimit-remaining"])
    assert seen == ["2", "1", "0"]  # the burst window is the tighter one
    assert (
        response.headers["x-ratelimit-limit"] == "3" and 0 < int(response.headers["x-ratelimit-reset"]) <= 60
    )

    refused, _ = chat(http, server.url, HELLO, alice_key)
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= 60  # the burst window: a minute at most
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert "try again in" in refused.json()["error"]["message"]

    runtime.set_flags({"rateLimit": {"freeBurst": 100}})  # the burst lifted: the day's quota is next
    server_two = server_with()
    for _ in range(2):
        response, _ = chat(http, server_two.url, HELLO, alice_key)
        assert response.status_code == 200
    over, _ = chat(http, server_two.url, HELLO, alice_key)
    assert over.status_code == 429 and int(over.headers["retry-after"]) > 60  # the day's window
    assert RateLimitRefusal.objects.get(user=alice).count == 2


def test_staff_see_the_refusals_by_plan_and_person(client, staff, alice, bob):
    from chat import store

    store.record_refusal(alice)
    store.record_refusal(alice)
    bob.tier = "pro"
    bob.save()
    store.record_refusal(bob)
    client.force_login(staff)
    page = client.get(reverse("usage:dashboard")).content.decode()
    assert "3 messages refused (free: 2, pro: 1)." in page
    assert "<td>alice</td><td>free</td><td>2</td>" in page


def _redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        return False
    return True


def test_two_processes_admit_exactly_the_limit_of_200_concurrent_requests(
    emu, alice, alice_key, transactional_db
):
    # Never a skip: every machine of this project runs Redis (.ci/run starts it).
    assert _redis_up(), "this test needs Redis on 127.0.0.1:6379 (start it as .ci/run does)"
    import redis

    redis.Redis.from_url("redis://127.0.0.1:6379/7").flushdb()
    runtime.set_flags({"rateLimit": {"freeLimit": 100, "freeBurst": 1000}, "enableCaching": False})
    emu.timing(provider="*", ttft_ms=1, chunk_ms=0, chunks=3)
    shared = {"REDIS_URL": "redis://127.0.0.1:6379/7", "CACHE_KEY_PREFIX": "limits-test"}
    servers = [start_live_server(emu.url, shared), start_live_server(emu.url, shared)]
    try:

        def ask(n: int):
            with httpx2.Client(timeout=120) as http:
                response = http.post(
                    servers[n % 2].url + "/api/chat/v2",
                    json={"messages": [{"role": "user", "content": f"Hello {n}"}]},
                    headers={"Authorization": f"Bearer {alice_key}", "Accept": "application/json"},
                )
                return response.status_code, response.headers.get("retry-after")

        with ThreadPoolExecutor(40) as pool:
            outcomes = list(pool.map(ask, range(200)))
    finally:
        for server in servers:
            server.process.terminate()
            server.process.wait(timeout=10)
    statuses = [status for status, _ in outcomes]
    assert statuses.count(200) == 100 and statuses.count(429) == 100, sorted(set(statuses))
    assert all(retry and int(retry) > 0 for status, retry in outcomes if status == 429)
