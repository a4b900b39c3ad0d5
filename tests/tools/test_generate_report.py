"""generateReport over alice's usage rows and conversations (bob's rows are there and never counted),
through tools.registry.invoke as the tool loop calls it."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from chat.models import Conversation, Message
from chat.schemas import ChartPart, MarkdownPart
from tools.base import ToolContext
from tools.registry import definitions, invoke
from usage.models import UsageMetric

# Chat's ORM work runs on the turn's database threads: the rows must be committed to be seen.
pytestmark = pytest.mark.django_db(transaction=True)


def ctx(user, tier: str = "free") -> ToolContext:
    return ToolContext(user_id=user.id, user_tier=tier)


def at(created_at, model_instance) -> None:
    type(model_instance).objects.filter(pk=model_instance.pk).update(created_at=created_at)


# alice's rows: (hours ago, provider, model, input, output, cost, latency, error, cache hit)
ALICE_ROWS = [
    (26, "groq", "llama-3.3-70b", 1000, 200, "0.012345", 800, "", False),
    (30, "groq", "llama-3.3-70b", 500, 100, "0.006000", 600, "", False),
    (50, "groq", "llama-3.3-70b", 1000, 200, "0", 5, "", True),
    (52, "anthropic", "claude-sonnet", 100, 0, None, 50, "503 from upstream", False),
    (75, "google", "gemini-2.5-flash", 3000, 700, "1.250000", 1500, "", False),
    (20 * 24, "google", "gemini-2.5-pro", 4000, 1000, "9.990000", 2000, "", False),  # only in 30d and 90d
]


@pytest.fixture
def usage_rows(alice, bob):
    now = timezone.now()
    made = []
    for hours, provider, model, t_in, t_out, cost, latency, error, hit in ALICE_ROWS:
        row = UsageMetric.objects.create(
            user=alice,
            provider=provider,
            model=model,
            input_tokens=t_in,
            output_tokens=t_out,
            cost_usd=Decimal(cost) if cost is not None else None,
            latency_ms=latency,
            error=error,
            cache_hit=hit,
        )
        at(now - timedelta(hours=hours), row)
        made.append((now - timedelta(hours=hours), row))
    for hours in (1, 40, 100):  # bob: big numbers and a model alice never used
        row = UsageMetric.objects.create(
            user=bob,
            provider="gateway",
            model="bobs-secret-model",
            input_tokens=1_000_000,
            output_tokens=1_000_000,
            cost_usd=Decimal("100.000000"),
            latency_ms=9999,
        )
        at(now - timedelta(hours=hours), row)
    return made


async def report(user, **args):
    outcome = await invoke("generateReport", args, ctx(user))
    assert outcome.ok, outcome.error
    result = outcome.result
    assert isinstance(result.parts[0], MarkdownPart) and result.parts[0].content == result.output
    return result.output, {c.data.title: c for c in result.parts[1:] if isinstance(c, ChartPart)}


async def test_a_usage_report_over_7_days_counts_exactly_alices_rows(alice, usage_rows):
    summary, charts = await report(alice, subject="usage", range="7d")
    assert "- Requests: 5 (1 failed, 1 answered from the cache)" in summary
    assert "- Tokens: 6,800 (5,600 in, 1,200 out)" in summary
    # 1.268345 in all: per request 0.253669, per day 0.181192
    assert "- Cost: $1.27 in total; on average $0.25 per request and $0.18 per day" in summary
    assert "- Average latency: 726 ms" in summary  # (800 + 600 + 5 + 1500) / 4: failed attempts left out
    assert "- Most used model: groq/llama-3.3-70b (3 requests, 3,000 tokens, $0.02)" in summary
    assert "- 1 requests have no price yet" in summary
    assert "bobs-secret-model" not in summary and "gateway" not in summary

    assert set(charts) == {
        "Cost per day (USD)",
        "Tokens by model",
        "Cost by provider (USD)",
        "Latency against tokens",
    }
    line = charts["Cost per day (USD)"]
    expected: dict[str, Decimal] = defaultdict(Decimal)
    for when, row in usage_rows:
        if row.cost_usd is not None and when >= timezone.now() - timedelta(days=7):
            expected[when.strftime("%Y-%m-%d")] += row.cost_usd
    got = dict(zip(line.data.labels, line.data.series[0].values, strict=True))
    assert {d: v for d, v in got.items() if v} == {d: float(c) for d, c in expected.items() if c}
    assert len(line.data.labels) in (8, 9)  # every day of the range, empty ones too

    bar = charts["Tokens by model"]
    assert bar.data.labels == ["google/gemini-2.5-flash", "groq/llama-3.3-70b", "anthropic/claude-sonnet"]
    assert [s.values for s in bar.data.series] == [[3000, 2500, 100], [700, 500, 0]]
    pie = charts["Cost by provider (USD)"]
    assert dict(zip(pie.data.labels, pie.data.series[0].values, strict=True)) == {
        "google": 1.25,
        "groq": 0.018345,
    }
    scatter = charts["Latency against tokens"]
    assert {s.name: s.points for s in scatter.data.series} == {
        "google": [(3700.0, 1500.0)],
        "groq": [(1200.0, 800.0), (600.0, 600.0), (1200.0, 5.0)],
    }


async def test_a_longer_range_takes_in_older_rows(alice, usage_rows):
    summary, charts = await report(alice, subject="usage", range="30d")
    assert "- Requests: 6 " in summary and "- Cost: $11.26 in total" in summary  # + 9.99
    assert len(charts["Cost per day (USD)"].data.labels) in (31, 32)


async def test_an_empty_range_says_there_is_nothing_and_draws_no_chart(alice, bob, usage_rows):
    # alice's newest row is 26 hours old; bob has one an hour old.
    outcome = await invoke("generateReport", {"subject": "usage", "range": "24h"}, ctx(alice))
    assert outcome.ok
    assert "Nothing to report: there is no usage in the last 24 hours." in outcome.result.output
    assert [type(p) for p in outcome.result.parts] == [MarkdownPart]  # bob's row an hour ago is not alice's


@pytest.fixture
def conversations(alice, bob):
    """Alice: a new conversation with 6 messages in the last day, an old one with 2 two days ago."""
    now = timezone.now()
    recent = Conversation.objects.create(user=alice, title="Recipes")
    old = Conversation.objects.create(user=alice, title="Old trip")
    at(now - timedelta(days=40), old)
    hours = {recent: [2, 2, 3, 3, 26, 26], old: [50, 50]}
    for conversation, times in hours.items():
        parent = None
        for i, h in enumerate(times):
            parent = Message.objects.create(
                conversation=conversation,
                parent_message=parent,
                role="user" if i % 2 == 0 else "assistant",
                content=f"m{i}",
            )
            at(now - timedelta(hours=h), parent)
    theirs = Conversation.objects.create(user=bob, title="Bob's secrets")
    for _ in range(5):
        Message.objects.create(conversation=theirs, role="user", content="bob")
    return now, list(hours.values())


async def test_a_conversations_report_counts_alices_messages_by_day_and_role(alice, conversations):
    now, hours = conversations
    summary, charts = await report(alice, subject="conversations", range="7d")
    assert "- Messages: 8 (4 from you, 4 answers)" in summary
    assert "- Conversations: 2 active, 1 new" in summary
    assert "- Average: 4 messages per active conversation" in summary
    assert "Bob" not in summary
    line = charts["Messages per day"]
    assert [s.name for s in line.data.series] == ["From you", "Answers"]
    by_day: dict[str, int] = defaultdict(int)
    for times in hours:
        for h in times:
            by_day[(now - timedelta(hours=h)).strftime("%Y-%m-%d")] += 1
    totals = [int(a + b) for a, b in zip(*(s.values for s in line.data.series), strict=True)]
    assert {d: n for d, n in zip(line.data.labels, totals, strict=True) if n} == dict(by_day)
    pie = charts["Messages by role"]
    assert (pie.data.labels, pie.data.series[0].values) == (["From you", "Answers"], [4, 4])
    bar = charts["Most active conversations"]
    assert (bar.data.labels, bar.data.series[0].values) == (["Recipes", "Old trip"], [6, 2])


async def test_a_conversations_report_with_nothing_in_range(alice):
    outcome = await invoke("generateReport", {"subject": "conversations", "range": "24h"}, ctx(alice))
    assert "Nothing to report: there are no messages in the last 24 hours." in outcome.result.output
    assert len(outcome.result.parts) == 1


async def test_a_query_table_is_summarised_and_charted(alice):
    columns = ["day", "orders", "revenue"]
    rows = [["2026-01-01", 3, 10.5], ["2026-01-02", 5, None], ["2026-01-03", 1, 4.25]]
    summary, charts = await report(alice, subject="query", columns=columns, rows=rows)
    assert "- orders: total 9, average 3, min 1, max 5" in summary
    assert "- revenue: total 14.75, average 7.38, min 4.25, max 10.5" in summary
    [chart] = charts.values()
    assert chart.chartType == "line"  # the labels are dates
    assert chart.data.labels == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert [s.values for s in chart.data.series] == [[3, 5, 1], [10.5, None, 4.25]]

    _, charts = await report(alice, subject="query", columns=["model", "n"], rows=[["a", 2], ["b", 6]])
    assert {c.chartType for c in charts.values()} == {"bar", "pie"}
    _, charts = await report(alice, subject="query", columns=["x", "y"], rows=[[1, 2], [3, 4.5]])
    [scatter] = charts.values()
    assert scatter.chartType == "scatter" and scatter.data.series[0].points == [(1, 2), (3, 4.5)]
    summary, charts = await report(alice, subject="query", columns=["name"], rows=[["only text"]])
    assert "nothing to chart" in summary and not charts
    summary, charts = await report(alice, subject="query", columns=["n"], rows=[])
    assert "Nothing to report: the table has no rows." in summary and not charts


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"subject": "query", "columns": ["a", "b"], "rows": [[1]]}, "row 0 has 1 values for 2 columns"),
        ({"subject": "query"}, "needs columns and rows"),
        ({"subject": "usage", "rows": [[1]], "columns": ["a"]}, "only for subject 'query'"),
        (
            {"subject": "query", "columns": ["a"], "rows": [[float("nan")]]},
            "rows.0.0: Value error, numbers must be finite",
        ),
        ({"subject": "query", "columns": ["a"], "rows": [[{"nested": 1}]]}, "each value is text, a number"),
        ({"subject": "query", "columns": ["a"], "rows": [[10**30]]}, "numbers must be finite and at most"),
        ({"subject": "query", "columns": ["a"], "rows": [[1]] * 1001}, "rows"),
        ({"subject": "usage", "range": "1y"}, "range"),
        ({"subject": "everything"}, "subject"),
    ],
)
async def test_bad_arguments_get_a_message_a_person_understands(alice, args, error):
    outcome = await invoke("generateReport", args, ctx(alice))
    assert not outcome.ok
    assert outcome.error.startswith("Invalid arguments for generateReport") and error in outcome.error


async def test_both_tiers_may_use_it_and_the_model_sees_its_schema(alice):
    [definition] = definitions(["generateReport"], "free")
    assert definitions(["generateReport"], "pro") == (definition,)
    schema = definition["parameters"]
    assert schema["properties"]["subject"]["enum"] == ["usage", "conversations", "query"]
    assert schema["properties"]["range"]["default"] == "7d"
    outcome = await invoke("generateReport", {"subject": "usage"}, ctx(alice, "pro"))
    assert outcome.ok and "Nothing to report" in outcome.result.output
