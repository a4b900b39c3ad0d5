"""Writing usage rows: one per provider attempt, priced from the catalog in Decimal."""

from __future__ import annotations

import logging
from decimal import Decimal

from providers.events import AttemptFinished
from usage.models import UsageMetric

log = logging.getLogger(__name__)


def attempt_cost(attempt: AttemptFinished) -> Decimal | None:
    """What the attempt cost in USD; a cache hit costs nothing. None: the model has no price."""
    if attempt.cache_hit:
        return Decimal("0")
    from providers.catalog import cost_of

    return cost_of(attempt.provider, attempt.model, attempt.usage)


def record_attempts(
    *, user_id, message_id, conversation_id, tier: str, trace_id: str, attempts: list[AttemptFinished]
) -> list[UsageMetric]:
    rows = []
    for attempt in attempts:
        cost = attempt_cost(attempt)
        if cost is None:
            # Never a silent $0: the row keeps NULL and the alert rules report unpriced models.
            log.warning("no price for %s/%s: usage recorded without cost", attempt.provider, attempt.model)
        usage = attempt.usage
        rows.append(
            UsageMetric(
                user_id=user_id,
                message_id=message_id,
                conversation_id=conversation_id,
                provider=attempt.provider,
                model=attempt.model,
                tier=tier,
                input_tokens=usage.input_tokens,
                cached_input_tokens=usage.cached_input_tokens,
                output_tokens=usage.output_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                cost_usd=cost,
                latency_ms=attempt.latency_ms,
                ttft_ms=attempt.ttft_ms,
                cache_hit=attempt.cache_hit,
                trace_id=trace_id,
                error=attempt.error[:2000],
                status_code=attempt.status,
            )
        )
    if rows:
        UsageMetric.objects.bulk_create(rows)
    return rows
