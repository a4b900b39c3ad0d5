"""searchKnowledge through the tool registry, as the tool loop calls it; and the RAG block."""

from __future__ import annotations

import pytest

from chat.schemas import SourcePart
from knowledge.rag import excerpt, rag_context
from tests.knowledge import helpers
from tools.base import ToolContext
from tools.registry import definitions, invoke

pytestmark = pytest.mark.django_db(transaction=True)


def ctx(user, tier: str = "free") -> ToolContext:
    return ToolContext(user_id=user.id, user_tier=tier)


async def test_the_tool_returns_numbered_passages_and_a_source_part_for_each(alice, corpus):
    outcome = await invoke("searchKnowledge", {"query": "sightseeing plans in Portugal", "k": 3}, ctx(alice))
    assert outcome.ok, outcome.error
    output = outcome.result.output
    assert [item["n"] for item in output] == list(range(1, len(output) + 1))
    assert output[0]["title"] == "Lisbon"
    assert "Lisbon itinerary" in output[0]["excerpt"]
    assert output[0]["url"].startswith(f"/knowledge/{corpus.lisbon.id}/#chunk-")
    assert set(output[0]) == {"n", "title", "excerpt", "url"}

    parts = outcome.result.parts
    assert len(parts) == len(output)
    assert all(isinstance(part, SourcePart) for part in parts)
    assert [p.url for p in parts] == [item["url"] for item in output]
    assert parts[0].sourceId == output[0]["url"].rsplit("#chunk-", 1)[1]
    assert parts[0].title == "Lisbon"
    assert parts[0].excerpt.startswith("Lisbon itinerary")


async def test_the_tool_searches_only_the_callers_knowledge(alice, bob, corpus, bobs_copy):
    outcome = await invoke(
        "searchKnowledge", {"query": "Kestrel Logistics INV-20931", "k": 20}, ctx(bob, "pro")
    )
    assert outcome.ok, outcome.error
    urls = {item["url"] for item in outcome.result.output}
    assert urls, "Bob has his own copy"
    assert all(
        url.startswith(f"/knowledge/{bobs_copy.id}/") or url.startswith(f"/c/{helpers.BOB_CONVERSATION}/")
        for url in urls
    )


async def test_the_tool_finds_nothing_as_an_empty_list(alice, corpus):
    outcome = await invoke("searchKnowledge", {"query": "quantum chromodynamics on a lattice"}, ctx(alice))
    assert outcome.ok
    assert outcome.result.output == []
    assert outcome.result.parts == ()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({}, "query: Field required"),
        ({"query": ""}, "query: String should have at least 1 character"),
        ({"query": "   "}, "query: Value error, the query must not be blank"),
        ({"query": "a\x00b"}, "query: Value error, the query must not contain NUL characters"),
        ({"query": "x" * 1001}, "query: String should have at most 1000 characters"),
        ({"query": "bread", "k": 0}, "k: Input should be greater than or equal to 1"),
        ({"query": "bread", "k": 21}, "k: Input should be less than or equal to 20"),
        ({"query": "bread", "k": 10**30}, "k: Input should be less than or equal to 20"),
        (
            {"query": "bread", "k": "many"},
            "k: Input should be a valid integer, unable to parse string as an integer",
        ),
    ],
)
async def test_bad_arguments_are_refused_with_a_message(alice, args, error):
    outcome = await invoke("searchKnowledge", args, ctx(alice))
    assert not outcome.ok
    assert outcome.error == f"Invalid arguments for searchKnowledge: {error}."


async def test_both_tiers_are_offered_the_tool():
    for tier in ("free", "pro"):
        (definition,) = definitions(["searchKnowledge"], tier)
        assert definition["name"] == "searchKnowledge"
        assert definition["parameters"]["properties"]["k"]["maximum"] == 20
        assert definition["parameters"]["required"] == ["query"]


async def test_rag_context_numbers_the_passages_and_returns_their_sources_in_order(alice, corpus):
    block, sources = await rag_context(alice.id, "my disc brakes feel soft and spongy", k=2)
    assert "cite it as [n]" in block
    assert block.count("\n[1] ") == 1 and "\n[3] " not in block
    assert sources[0].title == "Bicycle maintenance"
    assert "[1] Bicycle maintenance\nBrakes: replace the pads" in block
    assert "bleeding" in (sources[0].excerpt or "")

    block, sources = await rag_context(alice.id, "brakes, bread starter and the overdue invoice", k=3)
    assert len(sources) == 3
    positions = [block.index(f"\n[{n}] {source.title}\n") for n, source in enumerate(sources, start=1)]
    assert positions == sorted(positions)
    assert len({source.sourceId for source in sources}) == 3


async def test_rag_context_is_empty_when_nothing_is_relevant(alice, corpus):
    assert await rag_context(alice.id, "quantum chromodynamics on a lattice") == ("", [])


def test_an_excerpt_is_cut_at_a_word():
    assert excerpt("short  text\nhere") == "short text here"
    long = excerpt("alpha beta gamma " * 40)
    assert len(long) <= 280
    assert long.endswith("…")
    assert long[:-1].split(" ")[-1] in {"alpha", "beta", "gamma"}
