"""Upstream connections stay warm between a conversation's messages (providers/adapters/_common.POOL_LIMITS)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2

from providers.adapters._common import KEEPALIVE_S
from providers.base import ChatMessage, ProviderRequest
from tests.fixtures.emulator import PROVIDERS, collect

# httpx's own default: an idle connection older than this is closed and the next request opens a new one.
HTTPX_DEFAULT_KEEPALIVE_S = httpx2.Limits().keepalive_expiry


def pool_of(provider: Any) -> Any:
    """The connection pool the provider's SDK client sends through. Seeing a 90 s keep-alive from outside
    would take a pause of more than httpx's 5 s in the test; the pool says what it keeps instead."""
    client = provider._client
    if provider.config.wire == "gemini":  # google-genai keeps an inner client (and pool) per event loop
        http = client._api_client._async_httpx_client._client_for_running_loop()
    else:
        http = client._client
    return http._transport._pool


async def test_a_finished_answers_connection_is_kept_warm_for_the_next_message(emu, emulated_provider):
    assert HTTPX_DEFAULT_KEEPALIVE_S is not None and HTTPX_DEFAULT_KEEPALIVE_S < KEEPALIVE_S
    providers = {name: emulated_provider(name) for name in PROVIDERS}

    async def ask(name: str) -> None:
        request = ProviderRequest(model=PROVIDERS[name][1], messages=(ChatMessage("user", "Hello there"),))
        _, error = await collect(providers[name], request)
        assert error is None, name

    await asyncio.gather(*(ask(name) for name in PROVIDERS))
    for name, provider in providers.items():
        # The body was read to its end, so the connection went back to the pool, idle, and stays there
        # KEEPALIVE_S (not httpx's 5 s) before it is dropped.
        pool = pool_of(provider)
        assert pool._keepalive_expiry == KEEPALIVE_S, name
        assert [c.is_idle() for c in pool.connections] == [True], name
    await asyncio.gather(*(ask(name) for name in PROVIDERS))

    ports: dict[str, list[int]] = {}
    for entry in emu.requests():
        if not entry["path"].startswith("/_control"):
            ports.setdefault(entry["provider"], []).append(entry["client_port"])
    assert len(ports) == len(PROVIDERS)
    for provider, used in ports.items():
        assert len(used) == 2 and used[0] == used[1], (provider, used)
