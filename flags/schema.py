"""The runtime flags' one schema: the spec's Edge Config keys and ours, checked on every save.

The stored row is an override merged over the defaults (``flags.runtime``); what is checked is the
merged whole, so a typo in a key (``enableStreeming``), a wrong type (``"false"`` for a boolean),
an unknown provider or a limit below 1 is refused with the path of the mistake, instead of being
stored and silently changing nothing.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

LIMIT_MAX = 10_000_000


class FlagsInvalid(ValueError):
    """The flags as given cannot be stored; ``errors`` are (path, message) pairs a person can act on."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors))


def _known_provider(name: str) -> str:
    from providers.catalog import GATEWAY, LOCAL, get_catalog

    known = sorted(set(get_catalog().providers) - {GATEWAY, LOCAL})
    if name not in known:
        raise ValueError(f"{name!r} is not a provider; known: {', '.join(known)}")
    return name


class ProvidersFlags(BaseModel):
    model_config = ConfigDict(extra="forbid")

    primary: str
    fallback: str
    disabled: list[str] = Field(default_factory=list)
    # Not a switch: the providers an open degradation alert has taken out of the routes, shown with the
    # flags in effect (usage/alerts.py). Accepted so that what `show_flags` prints loads back, and
    # dropped when stored: it follows the alerts, never a saved value.
    degraded: list[str] = Field(default_factory=list)

    @field_validator("primary", "fallback")
    @classmethod
    def _provider(cls, value: str) -> str:
        return _known_provider(value)

    @field_validator("disabled")
    @classmethod
    def _providers(cls, value: list[str]) -> list[str]:
        return [_known_provider(name) for name in value]


class RateLimitFlags(BaseModel):
    """Messages per person: ``*Limit`` per quota window (a day by default), ``*Burst`` per burst
    window (a minute by default), by plan."""

    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool
    freeLimit: int = Field(ge=1, le=LIMIT_MAX)
    proLimit: int = Field(ge=1, le=LIMIT_MAX)
    freeBurst: int = Field(ge=1, le=LIMIT_MAX)
    proBurst: int = Field(ge=1, le=LIMIT_MAX)


class FlagsDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enableStreaming: StrictBool
    enableAIGateway: StrictBool
    enableCaching: StrictBool
    enableFailover: StrictBool
    providers: ProvidersFlags
    rateLimit: RateLimitFlags


def check(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (the merged flags) as valid JSON, or FlagsInvalid naming each mistake."""
    if not isinstance(document, dict):
        raise FlagsInvalid([("(flags)", "must be a JSON object")])
    try:
        return FlagsDocument.model_validate(document).model_dump()
    except ValidationError as exc:
        raise FlagsInvalid(
            [(".".join(str(p) for p in e["loc"]) or "(flags)", _plain(e)) for e in exc.errors()]
        ) from None


def _plain(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown flag (a typo?)"
    return str(error["msg"]).removeprefix("Value error, ")
