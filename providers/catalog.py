"""The model catalog: providers, models, prices and tiers, as data.

This is the spec's gateway config (``aiGatewayConfig``) with current model ids.
``CATALOG`` below is what ships; ``settings.CHIMERA_CATALOG`` (a dict, usually
loaded from the JSON file named by ``CHIMERA_CATALOG_FILE``) is deep-merged over
it, so a price, a timeout, a tier's route or a whole new model changes without a
code change. Lists (a tier's ``route``) are replaced, not merged. Prices are
strings in the data and ``Decimal`` once loaded, never float.

An override looks like::

    {"providers": {"groq": {"max_retries": 1, "first_token_timeout_s": 5}},
     "models": {"groq": {"llama-3.1-8b-instant": {"input": "0.05", "output": "0.08"}}},
     "tiers": {"fast": {"route": [["google", "gemini-2.5-flash-lite"], ["groq", "llama-3.1-8b-instant"]]}},
     "retry": {"backoff_base_s": 0.1}, "breaker": {"cooldown_s": 10}, "cache": {"ttl_s": 600}}

Which providers are reachable is decided from settings by ``provider_configs()``:

* ``CHIMERA_EMULATOR_URL`` set: every provider points at the emulator (a key is
  still sent: the real one if set, else ``"emulator"``).
* otherwise a provider is on when its API key is set;
* with no key at all every tier routes to the local model (llama.cpp's
  OpenAI-compatible server at ``CHIMERA_LOCAL_MODEL_URL``).

With ``AI_GATEWAY_API_KEY`` set and the ``enableAIGateway`` flag on, the factory
routes each choice through the Vercel AI Gateway instead (see ``factory.py``).
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, cast

from django.conf import settings
from django.core.signals import setting_changed

from providers.base import ProviderConfig, Wire
from providers.events import Usage

Tier = Literal["fast", "balanced", "powerful", "reasoning"]
TIERS: tuple[Tier, ...] = ("fast", "balanced", "powerful", "reasoning")
GATEWAY = "gateway"
LOCAL = "local"
LOCAL_MODEL = "smollm2-135m-instruct"
MILLION = Decimal(1_000_000)
DEFAULT_CHARS_PER_TOKEN = 4.0

# Prices are USD per million tokens, the providers' published list prices (standard tier, prompts
# under any long-context threshold). "cached_input" is the cache-read price; a model without prompt
# caching bills cached tokens as input. "cache_write_input" is the price of input written to the
# prompt cache (Anthropic: 1.25x input for the 5-minute cache); absent, such tokens cost as input.
# "chars_per_token" is the estimate used for counts a vendor never reported (a stream cut before
# its usage arrived): no tokenizer for these vendors' models ships in a package we can use offline,
# so the catalog says how many characters a token is, per provider or per model (default 4). Reasoning tokens are billed as output everywhere today; they
# have their own column so a provider that prices them apart needs only data.
CATALOG: dict[str, Any] = {
    "providers": {
        "groq": {
            "wire": "openai_compat",
            "max_retries": 3,
            "timeout_s": 30,
            "first_token_timeout_s": 10,
            "key_setting": "GROQ_API_KEY",
            "base_url_setting": "GROQ_BASE_URL",
            "default_base_url": "https://api.groq.com/openai/v1",
            "emulator_path": "/groq/openai/v1",
        },
        "google": {
            "wire": "gemini",
            "max_retries": 2,
            "timeout_s": 45,
            "first_token_timeout_s": 15,
            "key_setting": "GOOGLE_API_KEY",
            "base_url_setting": "GEMINI_BASE_URL",
            "default_base_url": None,
            "emulator_path": "/gemini",
        },
        "anthropic": {
            "wire": "anthropic",
            "max_retries": 2,
            "timeout_s": 60,
            "first_token_timeout_s": 20,
            "key_setting": "ANTHROPIC_API_KEY",
            "base_url_setting": "ANTHROPIC_BASE_URL",
            "default_base_url": None,
            "emulator_path": "/anthropic",
        },
        GATEWAY: {
            "wire": "openai_compat",
            "max_retries": 2,
            "timeout_s": 60,
            "first_token_timeout_s": 15,
            "key_setting": "AI_GATEWAY_API_KEY",
            "base_url_setting": "AI_GATEWAY_BASE_URL",
            "default_base_url": "https://ai-gateway.vercel.sh/v1",
            "emulator_path": "/gateway/v1",
        },
        LOCAL: {
            "wire": "openai_compat",
            "max_retries": 1,
            "timeout_s": 120,
            "first_token_timeout_s": 30,
            "key_setting": "",
            "base_url_setting": "CHIMERA_LOCAL_MODEL_URL",
            "default_base_url": "http://127.0.0.1:8766/v1",
            "emulator_path": "/local/v1",
        },
    },
    # provider -> model id -> facts. "gateway_id" is the Vercel AI Gateway's creator/model slug.
    "models": {
        "groq": {
            "llama-3.1-8b-instant": {
                "context_window": 131_072,
                "reasoning": False,
                "tools": True,
                "input": "0.05",
                "cached_input": "0.05",
                "output": "0.08",
                "reasoning_output": "0.08",
                "gateway_id": "meta/llama-3.1-8b",
            },
            "llama-3.3-70b-versatile": {
                "context_window": 131_072,
                "reasoning": False,
                "tools": True,
                "input": "0.59",
                "cached_input": "0.59",
                "output": "0.79",
                "reasoning_output": "0.79",
                "gateway_id": "meta/llama-3.3-70b",
            },
            "openai/gpt-oss-120b": {
                "context_window": 131_072,
                "reasoning": True,
                "tools": True,
                "input": "0.15",
                "cached_input": "0.075",
                "output": "0.60",
                "reasoning_output": "0.60",
                "gateway_id": "openai/gpt-oss-120b",
            },
        },
        "google": {
            "gemini-2.5-flash-lite": {
                "context_window": 1_048_576,
                "reasoning": True,
                "tools": True,
                "input": "0.10",
                "cached_input": "0.01",
                "output": "0.40",
                "reasoning_output": "0.40",
                "gateway_id": "google/gemini-2.5-flash-lite",
            },
            "gemini-2.5-flash": {
                "context_window": 1_048_576,
                "reasoning": True,
                "tools": True,
                "input": "0.30",
                "cached_input": "0.03",
                "output": "2.50",
                "reasoning_output": "2.50",
                "gateway_id": "google/gemini-2.5-flash",
            },
            "gemini-2.5-pro": {
                "context_window": 1_048_576,
                "reasoning": True,
                "tools": True,
                "input": "1.25",
                "cached_input": "0.125",
                "output": "10.00",
                "reasoning_output": "10.00",
                "gateway_id": "google/gemini-2.5-pro",
            },
        },
        "anthropic": {
            "claude-haiku-4-5": {
                "context_window": 200_000,
                "reasoning": True,
                "tools": True,
                "input": "1.00",
                "cached_input": "0.10",
                "cache_write_input": "1.25",
                "output": "5.00",
                "reasoning_output": "5.00",
                "gateway_id": "anthropic/claude-haiku-4.5",
            },
            "claude-sonnet-4-5": {
                "context_window": 200_000,
                "reasoning": True,
                "tools": True,
                "input": "3.00",
                "cached_input": "0.30",
                "cache_write_input": "3.75",
                "output": "15.00",
                "reasoning_output": "15.00",
                "gateway_id": "anthropic/claude-sonnet-4.5",
            },
            "claude-opus-4-1": {
                "context_window": 200_000,
                "reasoning": True,
                "tools": True,
                "input": "15.00",
                "cached_input": "1.50",
                "cache_write_input": "18.75",
                "output": "75.00",
                "reasoning_output": "75.00",
                "gateway_id": "anthropic/claude-opus-4.1",
            },
        },
        LOCAL: {
            # Self-hosted: a deliberate $0, not a missing price.
            LOCAL_MODEL: {
                "context_window": 8_192,
                "reasoning": False,
                "tools": False,
                "input": "0",
                "cached_input": "0",
                "output": "0",
                "reasoning_output": "0",
                "gateway_id": "",
            },
        },
    },
    # Ordered routes. "order": "flags" lets the runtime flags' primary/fallback reorder the providers;
    # "catalog" keeps this order (the reasoning tier leads with the model that has the capability).
    "tiers": {
        "fast": {
            "route": [
                ["groq", "llama-3.1-8b-instant"],
                ["google", "gemini-2.5-flash-lite"],
                ["anthropic", "claude-haiku-4-5"],
            ],
            "order": "flags",
        },
        "balanced": {
            "route": [
                ["groq", "llama-3.3-70b-versatile"],
                ["google", "gemini-2.5-flash"],
                ["anthropic", "claude-haiku-4-5"],
            ],
            "order": "flags",
        },
        "powerful": {
            "route": [
                ["groq", "llama-3.3-70b-versatile"],
                ["google", "gemini-2.5-pro"],
                ["anthropic", "claude-sonnet-4-5"],
            ],
            "order": "flags",
        },
        "reasoning": {
            "route": [
                ["anthropic", "claude-opus-4-1"],
                ["groq", "openai/gpt-oss-120b"],
                ["google", "gemini-2.5-pro"],
            ],
            "order": "catalog",
        },
    },
    # Router retries: exponential backoff with jitter; a Retry-After above the cap moves on instead.
    "retry": {"backoff_base_s": 0.25, "backoff_max_s": 4.0, "retry_after_cap_s": 10.0},
    "breaker": {"threshold": 5, "cooldown_s": 30.0},
    "cache": {"ttl_s": 3600},
}


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    wire: Wire
    max_retries: int
    timeout_s: float
    first_token_timeout_s: float
    key_setting: str
    base_url_setting: str
    default_base_url: str | None
    emulator_path: str
    base_url: str | None = None  # an override in the catalog wins over settings and the emulator


@dataclass(frozen=True, slots=True)
class ModelSpec:
    provider: str
    id: str
    context_window: int
    reasoning: bool
    tools: bool
    input: Decimal | None
    cached_input: Decimal | None
    output: Decimal | None
    reasoning_output: Decimal | None
    gateway_id: str
    cache_write_input: Decimal | None = None  # None: cache writes cost as input
    chars_per_token: float = DEFAULT_CHARS_PER_TOKEN

    @property
    def priced(self) -> bool:
        return None not in (self.input, self.cached_input, self.output, self.reasoning_output)


@dataclass(frozen=True, slots=True)
class TierSpec:
    name: str
    route: tuple[tuple[str, str], ...]
    order: Literal["flags", "catalog"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    backoff_base_s: float
    backoff_max_s: float
    retry_after_cap_s: float


@dataclass(frozen=True)
class Catalog:
    providers: dict[str, ProviderSpec]
    models: dict[tuple[str, str], ModelSpec]
    tiers: dict[str, TierSpec]
    retry: RetryPolicy
    breaker_threshold: int
    breaker_cooldown_s: float
    cache_ttl_s: int
    by_gateway_id: dict[str, ModelSpec]

    def model(self, provider: str, model: str) -> ModelSpec | None:
        """The model's facts; a gateway id ("anthropic/claude-opus-4.1") resolves to its upstream."""
        if provider == GATEWAY:
            return self.by_gateway_id.get(model)
        return self.models.get((provider, model))

    def tier(self, name: str) -> TierSpec:
        try:
            return self.tiers[name]
        except KeyError:
            raise ValueError(f"unknown tier {name!r}; known: {', '.join(self.tiers)}") from None


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _chars_per_token(value: Any) -> float:
    if value is None:
        return DEFAULT_CHARS_PER_TOKEN
    number = float(value)
    if not 0.5 <= number <= 20:
        raise ValueError(f"chars_per_token must be between 0.5 and 20, not {value!r}")
    return number


def _price(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        value = repr(value)  # "0.05", not 0.05000000000000000277...
    return Decimal(value)


def _build(data: dict[str, Any]) -> Catalog:
    providers = {
        name: ProviderSpec(
            name=name,
            wire=p["wire"],
            max_retries=int(p["max_retries"]),
            timeout_s=float(p["timeout_s"]),
            first_token_timeout_s=float(p["first_token_timeout_s"]),
            key_setting=p.get("key_setting", ""),
            base_url_setting=p.get("base_url_setting", ""),
            default_base_url=p.get("default_base_url"),
            emulator_path=p.get("emulator_path", f"/{name}"),
            base_url=p.get("base_url") or None,
        )
        for name, p in data["providers"].items()
    }
    models: dict[tuple[str, str], ModelSpec] = {}
    for provider, entries in data["models"].items():
        for model_id, m in entries.items():
            if m is None:  # an override can remove a model with null
                continue
            models[(provider, model_id)] = ModelSpec(
                provider=provider,
                id=model_id,
                context_window=int(m.get("context_window", 0)),
                reasoning=bool(m.get("reasoning", False)),
                tools=bool(m.get("tools", False)),
                input=_price(m.get("input")),
                cached_input=_price(m.get("cached_input", m.get("input"))),
                output=_price(m.get("output")),
                reasoning_output=_price(m.get("reasoning_output", m.get("output"))),
                gateway_id=m.get("gateway_id") or f"{provider}/{model_id}",
                cache_write_input=_price(m.get("cache_write_input", m.get("input"))),
                chars_per_token=_chars_per_token(
                    m.get("chars_per_token", data["providers"].get(provider, {}).get("chars_per_token"))
                ),
            )
    tiers = {
        name: TierSpec(
            name=name,
            route=tuple((str(p), str(m)) for p, m in t["route"]),
            order="catalog" if t.get("order") == "catalog" else "flags",
        )
        for name, t in data["tiers"].items()
    }
    r = data["retry"]
    return Catalog(
        providers=providers,
        models=models,
        tiers=tiers,
        retry=RetryPolicy(
            backoff_base_s=float(r["backoff_base_s"]),
            backoff_max_s=float(r["backoff_max_s"]),
            retry_after_cap_s=float(r["retry_after_cap_s"]),
        ),
        breaker_threshold=int(data["breaker"]["threshold"]),
        breaker_cooldown_s=float(data["breaker"]["cooldown_s"]),
        cache_ttl_s=int(data["cache"]["ttl_s"]),
        by_gateway_id={m.gateway_id: m for m in models.values() if m.provider != LOCAL},
    )


# Built once per settings state: the hot path reads these, settings changes (override_settings,
# pytest-django's ``settings`` fixture) clear them.
_cached: dict[str, Any] = {}
_lock = threading.Lock()
_SETTINGS_READ = frozenset(
    {
        "CHIMERA_CATALOG",
        "CHIMERA_EMULATOR_URL",
        "CHIMERA_LOCAL_MODEL_URL",
        "GROQ_API_KEY",
        "GOOGLE_API_KEY",
        "ANTHROPIC_API_KEY",
        "AI_GATEWAY_API_KEY",
        "GROQ_BASE_URL",
        "GEMINI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "AI_GATEWAY_BASE_URL",
    }
)


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in _SETTINGS_READ:
        _cached.clear()


setting_changed.connect(_on_setting_changed, dispatch_uid="providers.catalog")


def get_catalog() -> Catalog:
    """The shipped catalog with ``settings.CHIMERA_CATALOG`` merged over it."""
    catalog = _cached.get("catalog")
    if catalog is None:
        with _lock:
            override = getattr(settings, "CHIMERA_CATALOG", None) or {}
            catalog = _build(_merge(CATALOG, override) if override else CATALOG)
            _cached["catalog"] = catalog
    return catalog


def _setting(name: str) -> str:
    return (getattr(settings, name, "") or "").strip() if name else ""


def provider_configs() -> dict[str, ProviderConfig]:
    """A ``ProviderConfig`` for every reachable provider, from settings (see the module docstring).

    ``local`` is always present (it is where keyless installs go); ``gateway`` is present when
    it can be reached, but the factory routes through it only when ``AI_GATEWAY_API_KEY`` is set.
    """
    configs = _cached.get("configs")
    if configs is not None:
        return configs
    catalog = get_catalog()
    emulator = _setting("CHIMERA_EMULATOR_URL").rstrip("/")
    configs = {}
    for spec in catalog.providers.values():
        key = _setting(spec.key_setting)
        if emulator:
            base_url: str | None = emulator + spec.emulator_path
            key = key or "emulator"
        elif spec.name == LOCAL:
            base_url = _setting(spec.base_url_setting) or spec.default_base_url
            key = "local"  # llama.cpp ignores it; the SDK insists on one
        elif key:
            base_url = _setting(spec.base_url_setting) or spec.default_base_url
        else:
            continue
        configs[spec.name] = ProviderConfig(
            name=spec.name,
            wire=spec.wire,
            base_url=spec.base_url or base_url,
            api_key=key,
            max_retries=spec.max_retries,
            timeout_s=spec.timeout_s,
            first_token_timeout_s=spec.first_token_timeout_s,
        )
    _cached["configs"] = configs
    return configs


def direct_providers_configured() -> bool:
    """Whether any real provider (not the local model) can be reached, directly or by gateway."""
    return any(name != LOCAL for name in provider_configs())


def gateway_key_set() -> bool:
    return bool(_setting("AI_GATEWAY_API_KEY"))


def cost_of(provider: str, model: str, usage: Usage) -> Decimal | None:
    """What ``usage`` cost in USD, exactly (Decimal), or None when the model has no price.

    None means "unknown", which callers must surface as an alert, never record as $0.
    Conventions (the adapters' ``Usage``): ``input_tokens`` includes ``cached_input_tokens``
    and ``output_tokens`` includes ``reasoning_tokens``, as in the OpenAI and Anthropic APIs.
    ``provider`` may be ``"gateway"`` with a gateway model id; the gateway bills list price.
    """
    spec = get_catalog().model(provider, model)
    if spec is None or not spec.priced:
        return None
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    written = min(usage.cache_write_tokens, usage.input_tokens - cached)
    reasoning = min(usage.reasoning_tokens, usage.output_tokens)
    prices = (spec.input, spec.cached_input, spec.output, spec.reasoning_output)
    assert None not in prices  # spec.priced said so; the assert tells mypy too
    price_in, price_cached, price_out, price_reasoning = cast(
        tuple[Decimal, Decimal, Decimal, Decimal], prices
    )
    price_written = spec.cache_write_input if spec.cache_write_input is not None else price_in
    total = (
        (usage.input_tokens - cached - written) * price_in
        + cached * price_cached
        + written * price_written
        + (usage.output_tokens - reasoning) * price_out
        + reasoning * price_reasoning
    )
    return total / MILLION


def upstream_of(provider: str, model: str) -> tuple[str, str]:
    """For a gateway attempt, the provider/model it stands for; otherwise the pair unchanged."""
    if provider == GATEWAY:
        spec = get_catalog().by_gateway_id.get(model)
        if spec is not None:
            return spec.provider, spec.id
    return provider, model
