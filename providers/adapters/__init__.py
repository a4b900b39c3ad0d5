"""The adapters, one per wire format, behind a lazy registry.

A wire name maps to the dotted path of its ``Provider`` class; the module (and
its vendor SDK) is imported the first time a provider of that wire is built.
"""

from __future__ import annotations

import importlib
from functools import cache

from providers.base import Provider, ProviderConfig

PROVIDERS: dict[str, str] = {
    "openai_compat": "providers.adapters.openai_compat.OpenAICompatProvider",
    "gemini": "providers.adapters.gemini.GeminiProvider",
    "anthropic": "providers.adapters.anthropic.AnthropicProvider",
}


@cache
def provider_class(wire: str) -> type[Provider]:
    try:
        path = PROVIDERS[wire]
    except KeyError:
        raise ValueError(f"unknown wire format {wire!r}; known: {', '.join(PROVIDERS)}") from None
    module_name, _, class_name = path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise TypeError(f"{path} is not a Provider")
    return cls


def build_provider(config: ProviderConfig) -> Provider:
    """A new provider for ``config`` (one SDK client each: keep and reuse it)."""
    return provider_class(config.wire)(config)


__all__ = ["PROVIDERS", "build_provider", "provider_class"]
