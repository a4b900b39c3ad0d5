"""Common questions about one's own usage, answered by ready-made SQL over the queryDatabase views.

A question is read for three things: what to measure (cost, tokens, latency, cache hits, failures,
calls, messages, conversations), how to group it (by model, provider or day) and over which period
(today, yesterday, this/last week, this/last month, this year, the last N days). The SQL is built from
fixed fragments; the only values in it are the period's bounds, which are computed here. The same text
runs on PostgreSQL and SQLite, through exactly the same path (role, views, limits) as the model's SQL,
and the output shows it, so the model can adapt it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True, slots=True)
class CannedQuery:
    title: str
    sql: str


@dataclass(frozen=True, slots=True)
class _Period:
    label: str = ""
    start: datetime | None = None
    end: datetime | None = None


_COUNT_WORDS = {"how many", "count", "number of", "total"}
_LIST_WORDS = {"list", "show", "recent", "latest", "newest", "titles", "which"}
# (measure, words that ask for it), first match wins: "cost per conversation" is about cost.
_MEASURES: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "cost",
        frozenset({"cost", "costs", "spend", "spent", "spending", "money", "dollars", "price", "bill", "$"}),
    ),
    ("tokens", frozenset({"token", "tokens"})),
    (
        "latency",
        frozenset({"latency", "slow", "slowest", "fast", "fastest", "speed", "ttft", "response time"}),
    ),
    ("cache", frozenset({"cache", "cached", "caching"})),
    ("failures", frozenset({"error", "errors", "failed", "failure", "failures", "failing"})),
    ("calls", frozenset({"call", "calls", "request", "requests", "usage"})),
    ("messages", frozenset({"message", "messages"})),
    ("conversations", frozenset({"conversation", "conversations", "chat", "chats", "thread", "threads"})),
)
# measure -> (title, select list, the column to sort groups by)
_USAGE_MEASURES = {
    "cost": ("Cost", "count(*) AS calls, ROUND(COALESCE(SUM(cost_usd), 0), 6) AS cost_usd", "cost_usd"),
    "tokens": (
        "Tokens",
        "COALESCE(SUM(input_tokens), 0) AS input_tokens, COALESCE(SUM(output_tokens), 0) AS output_tokens, "
        "COALESCE(SUM(total_tokens), 0) AS total_tokens",
        "total_tokens",
    ),
    "latency": (
        "Latency",
        "count(*) AS calls, ROUND(AVG(latency_ms)) AS avg_latency_ms, MAX(latency_ms) AS max_latency_ms, "
        "ROUND(AVG(ttft_ms)) AS avg_ttft_ms",
        "avg_latency_ms",
    ),
    "cache": (
        "Cache hits",
        "count(*) AS calls, COALESCE(SUM(CASE WHEN cache_hit THEN 1 ELSE 0 END), 0) AS cache_hits, "
        "ROUND(100.0 * SUM(CASE WHEN cache_hit THEN 1 ELSE 0 END) / NULLIF(count(*), 0), 1) AS hit_rate_percent",
        "calls",
    ),
    "failures": (
        "Failed calls",
        "count(*) AS calls, COALESCE(SUM(CASE WHEN failed THEN 1 ELSE 0 END), 0) AS failed_calls",
        "failed_calls",
    ),
    "calls": (
        "Usage",
        "count(*) AS calls, COALESCE(SUM(total_tokens), 0) AS total_tokens, "
        "ROUND(COALESCE(SUM(cost_usd), 0), 6) AS cost_usd",
        "calls",
    ),
}
_DAY = "substr(CAST(created_at AS TEXT), 1, 10)"  # 'YYYY-MM-DD' in both dialects (timestamps are UTC)
# grouping -> (title, select columns, GROUP BY)
_GROUPS = {
    "model": (" by model", "provider, model", "provider, model"),
    "provider": (" by provider", "provider", "provider"),
    "day": (" per day", f"{_DAY} AS day", "day"),
}


def match(question: str, now: datetime) -> CannedQuery | None:
    """The ready-made query for ``question`` (asked at ``now``), or None when none fits."""
    text = " ".join(re.findall(r"[a-z0-9$]+", question.lower()))
    words = set(text.split())
    measure = next(
        (m for m, asks in _MEASURES if words & asks or any(" " in a and a in text for a in asks)), None
    )
    if measure is None:
        return None
    period = _period(text, now)
    group = _grouping(text, words)
    suffix = f", {period.label}" if period.label else ""

    if measure in _USAGE_MEASURES:
        title, measures, order = _USAGE_MEASURES[measure]
        if group is None:
            return CannedQuery(f"{title}{suffix}", f"SELECT {measures} FROM my_usage{_where(period)}")
        group_title, columns, group_by = _GROUPS[group]
        order_by = "day" if group == "day" else f"{order} DESC NULLS LAST"
        return CannedQuery(
            f"{title}{group_title}{suffix}",
            f"SELECT {columns}, {measures} FROM my_usage{_where(period)} GROUP BY {group_by} ORDER BY {order_by}",
        )

    if measure == "messages":
        if group == "day":
            sql = f"SELECT {_DAY} AS day, count(*) AS messages FROM my_messages{_where(period)} GROUP BY day ORDER BY day"
            return CannedQuery(f"Messages per day{suffix}", sql)
        if group in ("model", "provider"):
            where = _where(period, "role = 'assistant'")
            sql = (
                f"SELECT {group}, count(*) AS answers FROM my_messages{where} "
                f"GROUP BY {group} ORDER BY answers DESC"
            )
            return CannedQuery(f"Answers by {group}{suffix}", sql)
        sql = f"SELECT role, count(*) AS messages FROM my_messages{_where(period)} GROUP BY role ORDER BY messages DESC"
        return CannedQuery(f"Messages by role{suffix}", sql)

    # conversations
    if group == "day":
        sql = (
            f"SELECT {_DAY} AS day, count(*) AS conversations FROM my_conversations{_where(period)} "
            "GROUP BY day ORDER BY day"
        )
        return CannedQuery(f"Conversations started per day{suffix}", sql)
    if words & _LIST_WORDS and not any(w in text.split() or (" " in w and w in text) for w in _COUNT_WORDS):
        sql = (
            f"SELECT id, title, updated_at, is_archived FROM my_conversations{_where(period)} "
            "ORDER BY updated_at DESC LIMIT 20"
        )
        return CannedQuery(f"Latest conversations{suffix}", sql)
    sql = (
        "SELECT count(*) AS conversations, COALESCE(SUM(CASE WHEN is_archived THEN 1 ELSE 0 END), 0) AS archived "
        f"FROM my_conversations{_where(period)}"
    )
    return CannedQuery(f"Conversations{suffix}", sql)


def _grouping(text: str, words: set[str]) -> str | None:
    if re.search(r"\b(by|per|each|every|which) (day|date)\b", text) or "daily" in words:
        return "day"
    if words & {"model", "models"}:
        return "model"
    if words & {"provider", "providers"}:
        return "provider"
    return None


def _period(text: str, now: datetime) -> _Period:
    now = now.astimezone(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week = today - timedelta(days=today.weekday())
    month = today.replace(day=1)
    if days := re.search(r"\b(?:last|past) (\d{1,4}) days?\b", text):
        n = int(days.group(1))
        return _Period(f"the last {n} days", now - timedelta(days=n))
    if re.search(r"\btoday\b", text):
        return _Period("today", today)
    if re.search(r"\byesterday\b", text):
        return _Period("yesterday", today - timedelta(days=1), today)
    if re.search(r"\b(last|previous) week\b", text):
        return _Period("last week", week - timedelta(days=7), week)
    if re.search(r"\bweek\b", text):
        return _Period(f"this week (since {week:%Y-%m-%d})", week)
    if re.search(r"\b(last|previous) month\b", text):
        previous = (month - timedelta(days=1)).replace(day=1)
        return _Period(f"last month ({previous:%B %Y})", previous, month)
    if re.search(r"\bmonth\b", text):
        return _Period(f"this month (since {month:%Y-%m-%d})", month)
    if re.search(r"\byear\b", text):
        year = month.replace(month=1)
        return _Period(f"this year (since {year:%Y-%m-%d})", year)
    return _Period()


def _where(period: _Period, *conditions: str) -> str:
    parts = list(conditions)
    if period.start is not None:
        parts.append(f"created_at >= '{_timestamp(period.start)}'")
    if period.end is not None:
        parts.append(f"created_at < '{_timestamp(period.end)}'")
    return f" WHERE {' AND '.join(parts)}" if parts else ""


def _timestamp(moment: datetime) -> str:
    # The format SQLite's extract stores (tools.sql._iso), so text comparison orders correctly there;
    # PostgreSQL reads the same literal as a timestamptz.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
