"""Provider health for the staff page: configuration, breaker state and, on demand, a live check."""

from __future__ import annotations

import asyncio
from typing import Any

from providers.breaker import Breaker, get_breaker
from providers.catalog import provider_configs
from providers.factory import get_provider


async def provider_health(*, live: bool = False, breaker: Breaker | None = None) -> list[dict[str, Any]]:
    """One row per reachable provider: name, wire, base URL, breaker snapshot, and ``healthy``.

    ``healthy`` is None unless ``live`` (then each adapter's cheap ``health()`` runs, concurrently).
    Breaker rows of gateway upstreams (``gateway:<provider>``) are listed too.
    """
    breaker = breaker or get_breaker()
    configs = provider_configs()
    snaps = {s.provider: s for s in await breaker.snapshot(list(configs))}
    checks: dict[str, bool | None] = dict.fromkeys(configs)
    if live:

        async def check(name: str) -> None:
            try:
                checks[name] = bool(await get_provider(configs[name]).health())
            except Exception:
                checks[name] = False

        await asyncio.gather(*(check(name) for name in configs))
    rows = []
    for name, snap in snaps.items():
        config = configs.get(name)
        rows.append(
            {
                "provider": name,
                "wire": config.wire if config else "",
                "base_url": (config.base_url or "(SDK default)") if config else "",
                "healthy": checks.get(name),
                **snap.as_dict(),
            }
        )
    return rows
