"""Model factory: from a tier (or a task description) to an ordered route of model choices.

A *route* is the ordered list of (provider, model) choices the router walks for one turn:
the catalog's tier, minus providers the runtime flags disable, ordered by the flags'
primary/fallback (unless the tier pins its order), then adjusted for the circuit breaker
(providers whose breaker is open go last). Through the Vercel AI Gateway when its key is
set and ``enableAIGateway`` is on; to the local model when no provider key is set at all.

Provider instances (SDK clients with their connection pools) are built once per event loop
and config and reused: ``get_provider(config)``.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from providers.base import Provider, ProviderConfig
from providers.breaker import Breaker, State, get_breaker
from providers.catalog import (
    GATEWAY,
    LOCAL,
    LOCAL_MODEL,
    direct_providers_configured,
    gateway_key_set,
    get_catalog,
    provider_configs,
)

TaskComplexity = Literal["simple", "moderate", "complex"]

_COMPLEXITY_TIER = {"simple": "fast", "moderate": "balanced", "complex": "powerful"}


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """One step of a route: whom we call (``provider``/``model``) and what that stands for."""

    provider: str  # "groq", "google", "anthropic", "gateway", "local"
    model: str  # the id sent on the wire (a gateway slug when provider == "gateway")
    upstream_provider: str  # the provider meant; differs from ``provider`` only through the gateway
    upstream_model: str
    config: ProviderConfig
    tier: str

    @property
    def breaker_key(self) -> str:
        # Through the gateway each upstream keeps its own breaker: an Anthropic outage reported by
        # the gateway should not push gateway→Groq to the back of the route.
        return self.provider if self.provider != GATEWAY else f"{GATEWAY}:{self.upstream_provider}"


@dataclass(frozen=True, slots=True)
class Route:
    tier: str
    choices: tuple[ModelChoice, ...]
    states: Mapping[str, State]  # breaker state per breaker key when planned
    scope: str  # what the answer depends on besides the prompt: the response cache's key part

    @property
    def all_open(self) -> bool:
        """Every choice's breaker is open or half-open: try them all anyway, never fail closed."""
        return bool(self.choices) and all(self.states.get(c.breaker_key) != "closed" for c in self.choices)


class ModelFactory:
    def __init__(
        self,
        *,
        breaker: Breaker | None = None,
        flags: Mapping[str, Any] | None = None,
        health_ttl_s: float = 5.0,
    ) -> None:
        self.breaker = breaker or get_breaker()
        self._flags: Mapping[str, Any] = flags or {}
        self.health_ttl_s = health_ttl_s
        self._health: dict[tuple[str, str | None], tuple[float, bool]] = {}

    async def plan(self, tier: str, flags: Mapping[str, Any] | None = None) -> Route:
        """The route for ``tier`` now: flags applied, breaker-open providers last.

        ``flags`` are the runtime flags the caller fetched (the turn, once); without them, the ones
        this factory was made with (none: every flag at its default). The factory never reads them.
        """
        if flags is None:
            flags = self._flags
        choices, scope = self._choices(tier, flags)
        states = await self.breaker.states({c.breaker_key for c in choices}) if choices else {}
        if any(s == "open" for s in states.values()):
            # Open: skipped until the cooldown ends. Half-open keeps its place so it gets its probe.
            choices = [c for c in choices if states[c.breaker_key] != "open"] + [
                c for c in choices if states[c.breaker_key] == "open"
            ]
        return Route(tier, tuple(choices), states, scope)

    async def route_for(self, tier: str, flags: Mapping[str, Any] | None = None) -> list[ModelChoice]:
        """The ordered model choices for ``tier`` (see ``plan``)."""
        return list((await self.plan(tier, flags)).choices)

    async def select_model(
        self,
        task_complexity: TaskComplexity = "moderate",
        requires_reasoning: bool = False,
        max_latency: int = 2000,
    ) -> ModelChoice:
        """The spec's ``selectModel``: the first healthy choice of the tier the task needs.

        simple → fast, moderate → balanced, complex → powerful; anything that requires reasoning
        → reasoning. A latency budget under a second asks for the fast tier (reasoning excepted:
        thinking takes the time it takes). If nothing answers healthy, the route's head is
        returned anyway: the router's retries and failover get their chance.
        """
        tier = "reasoning" if requires_reasoning else _COMPLEXITY_TIER[task_complexity]
        if max_latency < 1000 and tier != "reasoning":
            tier = "fast"
        route = await self.plan(tier)
        if not route.choices:
            raise LookupError(f"no provider is enabled for tier {tier!r}")
        for choice in route.choices:
            if await self.test_provider_health(choice):
                return choice
        return route.choices[0]

    async def test_provider_health(self, provider: str | ModelChoice) -> bool:
        """Healthy = breaker not open and the adapter's cheap ``health()`` check passes.

        Results are kept ``health_ttl_s`` seconds so selecting a model stays cheap.
        """
        if isinstance(provider, ModelChoice):
            config, key = provider.config, provider.breaker_key
        else:
            found = provider_configs().get(provider)
            if found is None:
                return False
            config, key = found, provider
        if await self.breaker.state(key) == "open":
            return False
        cache_key = (config.name, config.base_url)
        now = time.monotonic()
        hit = self._health.get(cache_key)
        if hit is not None and now - hit[0] < self.health_ttl_s:
            return hit[1]
        try:
            async with asyncio.timeout(min(config.first_token_timeout_s, 5.0)):
                healthy = bool(await get_provider(config).health())
        except Exception:  # unreachable is simply unhealthy
            healthy = False
        self._health[cache_key] = (now, healthy)
        return healthy

    def _choices(self, tier: str, flags: Mapping[str, Any]) -> tuple[list[ModelChoice], str]:
        catalog = get_catalog()
        spec = catalog.tier(tier)
        configs = provider_configs()
        pflags = flags.get("providers") or {}
        disabled = set(pflags.get("disabled") or ())

        if not direct_providers_configured():
            return self._local(tier, configs, disabled)

        entries = [(p, m) for p, m in spec.route if p not in disabled]
        # Providers an alert found degraded leave the route while their incident is open (usage/alerts.py),
        # unless that would leave no direct provider: then the breaker decides, as before.
        degraded = set(pflags.get("degraded") or ())
        healthy = [(p, m) for p, m in entries if p not in degraded]
        routed = healthy if any(p in configs for p, _ in healthy) else entries
        if spec.order == "flags":
            rank = {pflags.get("fallback"): 1, pflags.get("primary"): 0}
            routed.sort(key=lambda e: rank.get(e[0], 2))

        choices: list[ModelChoice] = []
        gateway = configs.get(GATEWAY)
        if (
            gateway is not None
            and gateway_key_set()
            and flags.get("enableAIGateway", True)
            and GATEWAY not in disabled
        ):
            for p, m in routed:
                model = catalog.model(p, m)
                if model is not None and model.gateway_id:
                    choices.append(ModelChoice(GATEWAY, model.gateway_id, p, m, gateway, tier))
        # Direct providers follow the gateway ones: if the gateway itself is down, we still answer.
        choices.extend(ModelChoice(p, m, p, m, configs[p], tier) for p, m in routed if p in configs)
        if not choices and not any(p in configs for p, _ in spec.route):
            # Only the gateway has a key and its flag is off: the local model beats no answer.
            return self._local(tier, configs, disabled)
        scope = f"{tier}|" + ",".join(sorted({f"{p}/{m}" for p, m in entries}))
        if not flags.get("enableFailover", True):
            choices = choices[:1]
        return choices, scope

    @staticmethod
    def _local(
        tier: str, configs: Mapping[str, ProviderConfig], disabled: set[str]
    ) -> tuple[list[ModelChoice], str]:
        if LOCAL in disabled or LOCAL not in configs:
            return [], f"{tier}|"
        local = ModelChoice(LOCAL, LOCAL_MODEL, LOCAL, LOCAL_MODEL, configs[LOCAL], tier)
        return [local], f"{tier}|{LOCAL}/{LOCAL_MODEL}"


# -- provider instances -----------------------------------------------------------------------

# SDK clients hold connection pools bound to the event loop that opened them: one set per loop.
_registry: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], Provider]] = (
    weakref.WeakKeyDictionary()
)


def _config_key(config: ProviderConfig) -> tuple[Any, ...]:
    return (
        config.name,
        config.wire,
        config.base_url,
        config.api_key,
        config.max_retries,
        config.timeout_s,
        config.first_token_timeout_s,
        tuple(sorted(config.extra_headers.items())),
    )


def get_provider(config: ProviderConfig) -> Provider:
    """The shared ``Provider`` for ``config`` (built on first use in this event loop)."""
    loop = asyncio.get_running_loop()
    providers = _registry.get(loop)
    if providers is None:
        providers = _registry[loop] = {}
    key = _config_key(config)
    provider = providers.get(key)
    if provider is None:
        from providers.adapters import build_provider

        provider = providers[key] = build_provider(config)
    return provider
