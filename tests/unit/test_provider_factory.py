"""The model factory and the catalog: the spec's two unit tests, then routes, settings and prices.

Providers are reached only through the emulator (real adapters, real HTTP); "unhealthy" means
really unhealthy: a provider pointed at a port nobody listens on, or one whose breaker was opened
by real failed attempts.
"""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from flags.runtime import DEFAULTS
from providers.base import ChatMessage
from providers.breaker import Breaker
from providers.catalog import cost_of, get_catalog, provider_configs, upstream_of
from providers.events import Finish, Usage
from providers.factory import ModelFactory
from providers.router import Router

MESSAGES = (ChatMessage("user", "Say hi"),)


def flags(**changes):
    value = copy.deepcopy(DEFAULTS)
    providers = changes.pop("providers", {})
    value.update(changes)
    value["providers"].update(providers)
    return value


@pytest.fixture
def at_emulator(settings, emu):
    """Every provider at the emulator, no real keys, no gateway."""
    settings.CHIMERA_EMULATOR_URL = emu.url
    for name in ("GROQ_API_KEY", "GOOGLE_API_KEY", "ANTHROPIC_API_KEY", "AI_GATEWAY_API_KEY"):
        setattr(settings, name, "")
    settings.CHIMERA_CATALOG = {"retry": {"backoff_base_s": 0.001, "backoff_max_s": 0.01}}
    return emu


@pytest.fixture
def breaker():
    return Breaker(redis_url="", cache_s=0)


@pytest.fixture
def factory(breaker):
    return ModelFactory(breaker=breaker, flags=flags())


# -- the spec's unit tests ------------------------------------------------------------------------


async def test_selects_correct_model_based_on_task_complexity(at_emulator, factory):
    fast_model = await factory.select_model(
        task_complexity="simple", requires_reasoning=False, max_latency=500
    )
    assert fast_model.provider == "groq"
    assert "8b" in fast_model.model

    powerful_model = await factory.select_model(
        task_complexity="complex", requires_reasoning=True, max_latency=10000
    )
    assert powerful_model.provider == "anthropic"
    assert "opus" in powerful_model.model


async def test_falls_back_when_primary_provider_fails(at_emulator, settings, factory):
    # Groq is really unreachable: its base URL points at a closed port.
    settings.CHIMERA_CATALOG = {"providers": {"groq": {"base_url": "http://127.0.0.1:9/openai/v1"}}}

    model = await factory.select_model(task_complexity="moderate", requires_reasoning=False, max_latency=2000)

    assert model.provider == "google"  # Fallback
    assert await factory.test_provider_health("groq") is False
    assert await factory.test_provider_health("google") is True


async def test_falls_back_when_the_primary_breaker_was_opened_by_real_failures(at_emulator, breaker, factory):
    at_emulator.fault(provider="groq", kind="status", status=503)
    router = Router(breaker=breaker, factory=factory)
    for _ in range(2):  # 4 attempts each (1 + 3 retries): the 5th failure opens the breaker
        events = [
            e async for e in router.stream(tier="fast", messages=MESSAGES, flags=flags(enableCaching=False))
        ]
        assert isinstance(events[-1], Finish)
    assert await breaker.state("groq") == "open"

    model = await factory.select_model(task_complexity="moderate", requires_reasoning=False, max_latency=2000)

    assert model.provider == "google"


# -- routes -----------------------------------------------------------------------------------------


async def test_each_tier_routes_groq_then_gemini_then_anthropic(at_emulator, factory):
    for tier in ("fast", "balanced", "powerful"):
        route = await factory.route_for(tier)
        assert [c.provider for c in route] == ["groq", "google", "anthropic"], tier
    reasoning = await factory.route_for("reasoning")
    assert reasoning[0].provider == "anthropic" and "opus" in reasoning[0].model
    assert all(c.config.base_url.startswith(at_emulator.url) for c in reasoning)


async def test_the_flags_primary_and_fallback_reorder_the_route(at_emulator, factory):
    route = await factory.route_for("balanced", flags(providers={"primary": "anthropic", "fallback": "groq"}))
    assert [c.provider for c in route] == ["anthropic", "groq", "google"]


async def test_disabled_providers_are_left_out(at_emulator, factory):
    route = await factory.route_for("balanced", flags(providers={"disabled": ["groq", "anthropic"]}))
    assert [c.provider for c in route] == ["google"]


async def test_without_failover_only_the_first_choice_is_tried(at_emulator, factory):
    route = await factory.route_for("balanced", flags(enableFailover=False))
    assert [c.provider for c in route] == ["groq"]


async def test_an_open_breaker_moves_its_provider_to_the_end(at_emulator, breaker, factory):
    for _ in range(5):
        await breaker.record_failure("groq")

    plan = await factory.plan("balanced")

    assert [c.provider for c in plan.choices] == ["google", "anthropic", "groq"]
    assert not plan.all_open


async def test_when_every_breaker_is_open_all_are_still_tried_in_order(at_emulator, breaker, factory):
    for name in ("groq", "google", "anthropic"):
        for _ in range(5):
            await breaker.record_failure(name)

    plan = await factory.plan("balanced")

    assert [c.provider for c in plan.choices] == ["groq", "google", "anthropic"]
    assert plan.all_open
    router = Router(breaker=breaker, factory=factory)
    events = [
        e async for e in router.stream(tier="balanced", messages=MESSAGES, flags=flags(enableCaching=False))
    ]
    assert isinstance(events[-1], Finish)
    assert await breaker.state("groq") == "closed"  # the forced attempt succeeded


async def test_with_no_key_at_all_every_tier_goes_to_the_local_model(settings, factory):
    settings.CHIMERA_EMULATOR_URL = ""
    for name in ("GROQ_API_KEY", "GOOGLE_API_KEY", "ANTHROPIC_API_KEY", "AI_GATEWAY_API_KEY"):
        setattr(settings, name, "")
    settings.CHIMERA_LOCAL_MODEL_URL = "http://127.0.0.1:8766/v1"

    for tier in ("fast", "balanced", "powerful", "reasoning"):
        [choice] = await factory.route_for(tier)
        assert (choice.provider, choice.model) == ("local", "smollm2-135m-instruct")
        assert choice.config.base_url == "http://127.0.0.1:8766/v1"


async def test_with_only_a_gateway_key_and_its_flag_off_the_local_model_answers(settings, factory):
    settings.CHIMERA_EMULATOR_URL = ""
    settings.AI_GATEWAY_API_KEY = "vck-test"

    assert [c.provider for c in await factory.route_for("fast")] == ["gateway"] * 3
    [choice] = await factory.route_for("fast", flags(enableAIGateway=False))
    assert choice.provider == "local"
    assert (
        await factory.route_for("fast", flags(enableAIGateway=False, providers={"disabled": ["local"]})) == []
    )


async def test_a_provider_is_enabled_by_its_key(settings, factory):
    settings.CHIMERA_EMULATOR_URL = ""
    settings.GROQ_API_KEY = "gsk-test"
    settings.GOOGLE_API_KEY = ""
    settings.ANTHROPIC_API_KEY = "sk-ant-test"
    settings.AI_GATEWAY_API_KEY = ""
    settings.GROQ_BASE_URL = ""
    settings.ANTHROPIC_BASE_URL = ""

    route = await factory.route_for("balanced")

    assert [c.provider for c in route] == ["groq", "anthropic"]
    assert route[0].config.base_url == "https://api.groq.com/openai/v1"
    assert route[0].config.api_key == "gsk-test"
    assert route[1].config.base_url is None  # the SDK's default
    assert (route[0].config.max_retries, route[0].config.timeout_s) == (3, 30.0)
    assert (route[1].config.max_retries, route[1].config.timeout_s) == (2, 60.0)


async def test_the_gateway_carries_every_call_when_its_key_is_set_and_the_flag_is_on(
    at_emulator, settings, factory
):
    settings.AI_GATEWAY_API_KEY = "vck-test"

    route = await factory.route_for("balanced")

    gateway = [c for c in route if c.provider == "gateway"]
    assert [(c.upstream_provider, c.upstream_model) for c in gateway] == [
        ("groq", "llama-3.3-70b-versatile"),
        ("google", "gemini-2.5-flash"),
        ("anthropic", "claude-haiku-4-5"),
    ]
    assert gateway[0].model == "meta/llama-3.3-70b"
    assert gateway[0].config.base_url == f"{at_emulator.url}/gateway/v1"
    assert route[: len(gateway)] == gateway  # direct providers only after the gateway
    assert upstream_of("gateway", "anthropic/claude-haiku-4.5") == ("anthropic", "claude-haiku-4-5")

    bypass = await factory.route_for("balanced", flags(enableAIGateway=False))
    assert [c.provider for c in bypass] == ["groq", "google", "anthropic"]


async def test_the_catalog_is_overridable_without_code(at_emulator, settings, factory):
    settings.CHIMERA_CATALOG = {
        "providers": {"groq": {"max_retries": 1, "first_token_timeout_s": 2}},
        "models": {"groq": {"llama-3.1-8b-instant": {"input": "0.07"}}},
        "tiers": {"fast": {"route": [["google", "gemini-2.5-flash-lite"], ["groq", "llama-3.1-8b-instant"]]}},
    }

    route = await factory.route_for("fast", flags(providers={"primary": "google", "fallback": "groq"}))

    assert [c.provider for c in route] == ["google", "groq"]
    assert route[1].config.max_retries == 1 and route[1].config.first_token_timeout_s == 2
    assert get_catalog().model("groq", "llama-3.1-8b-instant").input == Decimal("0.07")
    assert provider_configs()["groq"].max_retries == 1


async def test_an_unknown_tier_is_an_error(at_emulator, factory):
    with pytest.raises(ValueError, match="unknown tier"):
        await factory.route_for("cheap")


async def test_the_factory_applies_the_flags_it_is_given_and_defaults_without_any(at_emulator, breaker):
    """The factory never reads the stored flags: the turn fetches them once and passes them in
    (tests/chat/test_consumer.py checks that stored flags reach a turn's route)."""
    factory = ModelFactory(breaker=breaker)  # no flags: every flag at its default
    assert [c.provider for c in await factory.route_for("balanced")] == ["groq", "google", "anthropic"]
    given = await factory.route_for("balanced", {"providers": {"disabled": ["groq"]}})
    assert [c.provider for c in given] == ["google", "anthropic"]
    made_with = ModelFactory(breaker=breaker, flags={"providers": {"primary": "anthropic"}})
    assert (await made_with.route_for("balanced"))[0].provider == "anthropic"


# -- prices -----------------------------------------------------------------------------------------


def test_cost_is_exact_decimal_with_cached_input_billed_at_the_cache_price():
    usage = Usage(input_tokens=1_000_000, output_tokens=2_000_000, cached_input_tokens=400_000)
    # claude-sonnet-4-5: $3 in, $0.30 cached, $15 out per million
    assert cost_of("anthropic", "claude-sonnet-4-5", usage) == Decimal("1.8") + Decimal("0.12") + Decimal(
        "30"
    )
    assert cost_of("groq", "llama-3.1-8b-instant", Usage(input_tokens=523, output_tokens=77)) == (
        Decimal("523") * Decimal("0.05") + Decimal("77") * Decimal("0.08")
    ) / Decimal(1_000_000)


def test_cost_through_the_gateway_is_the_upstream_list_price():
    usage = Usage(input_tokens=1000, output_tokens=500)
    assert cost_of("gateway", "google/gemini-2.5-flash", usage) == cost_of(
        "google", "gemini-2.5-flash", usage
    )


def test_a_model_without_a_price_costs_none_never_zero(settings):
    settings.CHIMERA_CATALOG = {"models": {"groq": {"new-model": {"context_window": 8192, "input": None}}}}
    assert cost_of("groq", "new-model", Usage(10, 10)) is None
    assert cost_of("groq", "no-such-model", Usage(10, 10)) is None
    assert cost_of("local", "smollm2-135m-instruct", Usage(10, 10)) == Decimal(0)


def test_every_shipped_model_has_decimal_prices_and_a_context_window():
    catalog = get_catalog()
    for (provider, model), spec in catalog.models.items():
        assert spec.priced, (provider, model)
        assert all(isinstance(p, Decimal) for p in (spec.input, spec.cached_input, spec.output))
        assert spec.context_window > 0
    for tier in catalog.tiers.values():
        for provider, model in tier.route:
            assert (provider, model) in catalog.models, (tier.name, provider, model)
