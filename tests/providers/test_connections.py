"""Upstream connections stay warm between a conversation's messages (providers/adapters/_common.POOL_LIMITS)."""

from __future__ import annotations

import asyncio

import httpx2

from providers.adapters._common import KEEPALIVE_S
from providers.base import ChatMessage, ProviderRequest
from tests.fixtures.emulator import PROVIDERS, collect

# httpx's own default: an idle connection older than this would be closed and a new one opened.
HTTPX_DEFAULT_KEEPALIVE_S = httpx2.Limits().keepalive_expiry


async def test_a_message_after_a_pause_reuses_the_connection_of_the_one_before(emu, emulated_provider):
    assert HTTPX_DEFAULT_KEEPALIVE_S is not None and HTTPX_DEFAULT_KEEPALIVE_S < KEEPALIVE_S
    providers = {name: emulated_provider(name) for name in PROVIDERS}

    async def ask(name: str) -> None:
        request = ProviderRequest(model=PROVIDERS[name][1], messages=(ChatMessage("user", "Hello there"),))
        _, error = await collect(providers[name], request)
        assert error is None, name

    await asyncio.gather(*(ask(name) for name in PROVIDERS))
    # Idle longer than httpx would keep a connection (a lower bound: a slower machine waits longer,
    # which changes nothing while it stays under KEEPALIVE_S).
    await asyncio.sleep(HTTPX_DEFAULT_KEEPALIVE_S + 1)
    await asyncio.gather(*(ask(name) for name in PROVIDERS))

    ports: dict[str, list[int]] = {}
    for entry in emu.requests():
        if not entry["path"].startswith("/_control"):
            ports.setdefault(entry["provider"], []).append(entry["client_port"])
    assert len(ports) == len(PROVIDERS)
    for provider, used in ports.items():
        assert len(used) == 2 and used[0] == used[1], (provider, used)
