"""Pricing and recording provider attempts: one usage row per attempt, priced once, in Decimal.

``price`` is the one place an attempt gets its cost; the turn sums the priced attempts for the
answer's metadata and hands the same list to ``record_attempts``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from chimera.rows import insert
from providers.events import AttemptFinished, Usage
from usage.models import UsageMetric

log = logging.getLogger(__name__)
MICRODOLLAR = Decimal("0.000001")  # the usage table's cost_usd has six decimal places


@dataclass(frozen=True, slots=True)
class PricedAttempt:
    attempt: AttemptFinished
    cost: Decimal | None  # USD; None: the model has no price (never a silent $0)


def stored(cost: Decimal | None) -> Decimal | None:
    """A cost as the usage table keeps it: to the millionth of a dollar (PostgreSQL rounds half up;
    SQLite would keep every digit, so the rounding is done here, the same for both)."""
    return None if cost is None else cost.quantize(MICRODOLLAR, ROUND_HALF_UP)


def attempt_cost(attempt: AttemptFinished) -> Decimal | None:
    """What the attempt cost in USD; a cache hit costs nothing. None: the model has no price."""
    if attempt.cache_hit:
        return Decimal("0")
    from providers.catalog import cost_of

    return stored(cost_of(attempt.provider, attempt.model, attempt.usage))


def _saved(attempt: AttemptFinished) -> Decimal | None:
    """What a cache hit saved: the price of the answer it replayed (None for other attempts)."""
    if not attempt.cache_hit:
        return None
    from providers.catalog import cost_of

    return stored(cost_of(attempt.provider, attempt.model, attempt.usage))


def price(attempts: Iterable[AttemptFinished]) -> list[PricedAttempt]:
    return [PricedAttempt(a, attempt_cost(a)) for a in attempts]


def total_cost(priced: Iterable[PricedAttempt]) -> Decimal | None:
    """The sum, or None when any attempt has no price (a partial sum would understate it)."""
    total = Decimal("0")
    for p in priced:
        if p.cost is None:
            return None
        total += p.cost
    return total


def record_attempts(
    *,
    user_id,
    message_id,
    conversation_id,
    tier: str,
    trace_id: str,
    priced: Sequence[PricedAttempt],
    user_tier: str | None = None,
) -> list[UsageMetric]:
    """Write the attempts' usage rows (idempotently). ``tier`` is the model tier asked for,
    ``user_tier`` the account's plan (None: read from the account)."""
    if not priced:
        return []
    if user_tier is None:
        from django.contrib.auth import get_user_model

        user_tier = get_user_model().objects.filter(pk=user_id).values_list("tier", flat=True).first() or ""
    rows = []
    for n, p in enumerate(priced):
        attempt = p.attempt
        if p.cost is None:
            # The row keeps NULL and the alert rules report unpriced models.
            log.warning("no price for %s/%s: usage recorded without cost", attempt.provider, attempt.model)
        usage = attempt.usage
        rows.append(
            UsageMetric(
                # The same attempt of the same turn always gets the same id: writing a turn's rows
                # again (a retried final write whose first commit may have happened, or the orphan
                # sweep after it) adds nothing, while a later turn on the message (a continuation) adds.
                id=uuid.uuid5(uuid.UUID(str(message_id)), f"{trace_id}:attempt-{n}")
                if message_id
                else uuid.uuid4(),
                user_id=user_id,
                message_id=message_id,
                conversation_id=conversation_id,
                provider=attempt.provider,
                model=attempt.model,
                tier=tier,
                user_tier=user_tier,
                input_tokens=usage.input_tokens,
                cached_input_tokens=usage.cached_input_tokens,
                output_tokens=usage.output_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                input_estimated=usage.input_estimated,
                output_estimated=usage.output_estimated,
                cost_usd=p.cost,
                latency_ms=attempt.latency_ms,
                ttft_ms=attempt.ttft_ms,
                cache_hit=attempt.cache_hit,
                saved_cost_usd=_saved(attempt),
                trace_id=trace_id,
                error=attempt.error[:2000],
                status_code=attempt.status,
            )
        )
    insert(rows, ignore_conflicts=True)
    return rows


# ---- attempts as JSON: a running answer's checkpoint carries them, for the orphan sweep ----------
_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cache_write_tokens",
    "input_estimated",
    "output_estimated",
)


def attempt_json(attempt: AttemptFinished) -> dict[str, Any]:
    usage = attempt.usage
    return {
        "provider": attempt.provider,
        "model": attempt.model,
        "usage": {name: getattr(usage, name) for name in _USAGE_FIELDS},
        "latency_ms": attempt.latency_ms,
        "ttft_ms": attempt.ttft_ms,
        "error": attempt.error,
        "status": attempt.status,
        "cache_hit": attempt.cache_hit,
    }


def attempt_from_json(data: dict[str, Any]) -> AttemptFinished:
    usage = data.get("usage") or {}
    return AttemptFinished(
        provider=str(data["provider"]),
        model=str(data["model"]),
        usage=Usage(**{name: usage[name] for name in _USAGE_FIELDS if name in usage}),
        latency_ms=int(data.get("latency_ms") or 0),
        ttft_ms=data.get("ttft_ms"),
        error=str(data.get("error") or ""),
        status=data.get("status"),
        cache_hit=bool(data.get("cache_hit")),
    )
