"""Questions in words -> ready-made SQL: what is measured, how it is grouped, and over which period."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tools.sql_questions import match

NOW = datetime(2025, 3, 5, 15, 30, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("question", "title", "where"),
    [
        ("How much have I spent?", "Cost", ""),
        ("cost today", "Cost, today", "created_at >= '2025-03-05T00:00:00.000000+00:00'"),
        (
            "what did I spend yesterday",
            "Cost, yesterday",
            "created_at >= '2025-03-04T00:00:00.000000+00:00' AND created_at < '2025-03-05T00:00:00.000000+00:00'",
        ),
        ("tokens this week", "Tokens, this week (since 2025-03-03)", ">= '2025-03-03T00:00:00.000000+00:00'"),
        (
            "tokens last week",
            "Tokens, last week",
            ">= '2025-02-24T00:00:00.000000+00:00' AND created_at < '2025-03-03T00:00:00.000000+00:00'",
        ),
        ("cost this month", "Cost, this month (since 2025-03-01)", ">= '2025-03-01T00:00:00.000000+00:00'"),
        (
            "cost last month",
            "Cost, last month (February 2025)",
            ">= '2025-02-01T00:00:00.000000+00:00' AND created_at < '2025-03-01T00:00:00.000000+00:00'",
        ),
        ("spend in the last 30 days", "Cost, the last 30 days", ">= '2025-02-03T15:30:00.000000+00:00'"),
        ("cost this year", "Cost, this year (since 2025-01-01)", ">= '2025-01-01T00:00:00.000000+00:00'"),
    ],
)
def test_the_period_becomes_bounds_on_created_at(question, title, where):
    canned = match(question, NOW)
    assert canned is not None and canned.title == title
    assert " FROM my_usage" in canned.sql
    assert where in canned.sql
    if not where:
        assert "WHERE" not in canned.sql


@pytest.mark.parametrize(
    ("question", "title", "fragment"),
    [
        (
            "tokens by model",
            "Tokens by model",
            "GROUP BY provider, model ORDER BY total_tokens DESC NULLS LAST",
        ),
        ("cost per provider", "Cost by provider", "GROUP BY provider ORDER BY cost_usd DESC NULLS LAST"),
        ("daily cost", "Cost per day", "GROUP BY day ORDER BY day"),
        ("which model is slowest?", "Latency by model", "AVG(latency_ms)"),
        ("cache hit rate by provider", "Cache hits by provider", "hit_rate_percent"),
        ("how many requests failed", "Failed calls", "failed_calls"),
        ("usage this month", "Usage, this month (since 2025-03-01)", "count(*) AS calls"),
        ("how many messages per day", "Messages per day", "FROM my_messages"),
        ("messages by model", "Answers by model", "WHERE role = 'assistant' GROUP BY model"),
        ("How many conversations do I have?", "Conversations", "SELECT count(*) AS conversations"),
        ("show my latest chats", "Latest conversations", "ORDER BY updated_at DESC LIMIT 20"),
        ("how much did each conversation cost", "Cost", "FROM my_usage"),
        ("What's the weather?", None, None),
    ],
)
def test_the_measure_and_grouping_are_read_from_the_words(question, title, fragment):
    canned = match(question, NOW)
    if title is None:
        assert canned is None
        return
    assert canned is not None
    assert canned.title == title
    assert fragment in canned.sql
