"""GET /api/usage: the caller's own usage this calendar month (UTC) and what is left of their limits."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from django.http import HttpResponse
from ninja import Field, Router, Schema

from chat.api.schemas import ErrorOut
from chat.api.streams import rate_limit_headers
from usage import personal
from usage.limits import Quota

router = Router(tags=["usage"])

COST = 'USD as a decimal string with 6 places (the usage rows\' precision), e.g. "0.004217"'


class UsageFigures(Schema):
    requests: int = Field(
        ..., description="Provider attempts (an answer that failed over counts each attempt)"
    )
    errors: int = Field(..., description="Attempts that failed")
    cacheHits: int = Field(..., description="Answers served from the response cache (cost 0)")
    inputTokens: int = Field(..., description="Prompt tokens, cached ones included")
    cachedInputTokens: int
    outputTokens: int = Field(..., description="Answer tokens, reasoning ones included")
    reasoningTokens: int
    costUsd: str = Field(..., description=COST)


class UsageDay(UsageFigures):
    date: date


class RateLimitWindow(Schema):
    window: Literal["burst", "quota"]
    limit: int = Field(..., description="Messages allowed per window")
    remaining: int = Field(..., description="Messages left in the current window")
    resetSeconds: int = Field(..., description="Seconds until the window starts again")
    periodSeconds: int = Field(..., description="The window's length")


class RateLimits(Schema):
    state: Literal["on", "off", "unavailable"] = Field(
        ..., description='"off": limits are switched off; "unavailable": their counters cannot be read now'
    )
    plan: str
    windows: list[RateLimitWindow]


class UsageOut(UsageFigures):
    month: str = Field(..., description="The calendar month, UTC: YYYY-MM")
    since: datetime = Field(..., description="The month's first instant (UTC)")
    until: datetime = Field(..., description="The next month's first instant (UTC)")
    days: list[UsageDay] = Field(..., description="Days of the month with usage, oldest first")
    rateLimits: RateLimits


def _figures(figures: personal.Figures) -> dict:
    return {
        "requests": figures.requests,
        "errors": figures.errors,
        "cacheHits": figures.cache_hits,
        "inputTokens": figures.input_tokens,
        "cachedInputTokens": figures.cached_input_tokens,
        "outputTokens": figures.output_tokens,
        "reasoningTokens": figures.reasoning_tokens,
        "costUsd": figures.cost,
    }


@router.get(
    "",
    response={200: UsageOut, 401: ErrorOut},
    summary="Your usage this calendar month (UTC), by day, and what is left of your rate limits",
)
def my_usage(request, response: HttpResponse):
    user = request.auth
    month = personal.month(user)
    limits = personal.standing(user)
    if limits.windows:  # the same headers as a chat answer: the window nearest its limit
        nearest = min(limits.windows, key=lambda w: (w.remaining, -w.reset_s))
        for name, value in rate_limit_headers(
            Quota(nearest.limit, nearest.remaining, nearest.reset_s)
        ).items():
            response[name] = value
    return {
        "month": month.name,
        "since": month.since,
        "until": month.until,
        **_figures(month.total),
        "days": [{"date": day, **_figures(figures)} for day, figures in month.days],
        "rateLimits": {
            "state": limits.state,
            "plan": limits.plan,
            "windows": [
                {
                    "window": w.window,
                    "limit": w.limit,
                    "remaining": w.remaining,
                    "resetSeconds": w.reset_s,
                    "periodSeconds": w.period_s,
                }
                for w in limits.windows
            ],
        },
    }
