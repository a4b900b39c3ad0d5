"""The bill reconciled: a thousand faulted turns, Chimera's usage rows against the vendors' own log.

Turns run through the API, several at a time, on four tiers (one of them reasoning, so thinking tokens
are billed), with a long shared system prompt (the vendors report cached input) and the gateway cache
on (repeated questions are hits), while the emulator breaks streams at random on every wire (cuts
after k chunks, dropped connections, malformed chunks, first-token timeouts, 503s, stalls).
Afterwards every request the vendors took has its usage row, the cache hits have theirs at $0, and
the recorded cost differs from what the vendors billed (their log, priced with an independent price
list) by less than a cent in all — the spec's "cost tracking accurate to $0.01", held also where
counts had to be estimated. Then the hour's rollups (and the day's) hold exactly the raw rows' sums.
CHIMERA_RECONCILE_TURNS sets the number of turns (default 1000); CHIMERA_RECONCILE_SEED replays a run.
"""

from __future__ import annotations

import json
import os
import random
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx2
import pytest
from django.db.models import Max, Min

from tests.api.helpers import DONE, chat
from tests.usage.vendor import vendor_bill
from usage import rollups
from usage.models import UsageMetric, UsageRollup

pytestmark = pytest.mark.django_db(transaction=True)

TURNS = int(os.environ.get("CHIMERA_RECONCILE_TURNS", "1000"))
SEED = int(os.environ.get("CHIMERA_RECONCILE_SEED", "20261204"))
CONCURRENCY = 8
SEGMENTS = ("groq", "gemini", "anthropic")
GROQ, GEMINI, CLAUDE, THINKER = (
    ["groq", "llama-3.3-70b-versatile"],
    ["google", "gemini-2.5-pro"],
    ["anthropic", "claude-sonnet-4-5"],
    ["groq", "openai/gpt-oss-120b"],
)
TIERS = ("fast", "balanced", "powerful", "reasoning")
# A long question, so a prompt is worth something: ordinary English prose of about 12,000 characters.
PROSE = (
    "Glaciers form where more snow falls in winter than melts in summer. Over many years the snow "
    "is pressed into firn and then into dense blue ice, which begins to flow under its own weight. "
    "A valley glacier grinds the rock beneath it, carries boulders far from their source, and leaves "
    "moraines, drumlins and polished bedrock behind when it retreats. "
)
QUESTION = (PROSE * 12) + "What does a retreating glacier leave behind, turn {n}?"
# The same long instructions on every turn: after the first request, each vendor reports them cached.
SYSTEM = "You are a patient geography tutor. Background reading follows. " + PROSE * 24
# One question in four is asked again (a gateway cache hit, unless its first asking is still running
# or was broken).
REPEAT_EVERY = 4


def faults(rng: random.Random, count: int) -> list[dict]:
    """Faults for the run: each breaks the next request to its provider."""
    out = []
    for _ in range(count):
        kind = rng.choice(["cut", "abort", "malformed", "first-token", "status", "stall"])
        fault = {"provider": rng.choice(SEGMENTS), "times": 1}
        fault |= {
            "cut": {"kind": "cut", "after_tokens": rng.randint(0, 12)},
            "abort": {"kind": "cut", "after_tokens": rng.randint(1, 12), "abort": True},
            "malformed": {"kind": "malformed", "after_tokens": rng.randint(0, 10)},
            "first-token": {"kind": "stall", "stall_ms": 6000},
            "status": {"kind": "status", "status": rng.choice([500, 503])},
            "stall": {"kind": "stall", "after_tokens": rng.randint(1, 8), "stall_ms": 100},
        }[kind]
        out.append(fault)
    return out


def test_hundreds_of_faulted_turns_are_billed_to_the_cent(server_with, emu, alice_key, tmp_path):
    # Each wire first on one tier's route (the others behind it), so every wire takes faults.
    catalog = {
        "providers": {p: {"first_token_timeout_s": 3} for p in ("groq", "google", "anthropic")},
        "retry": {"backoff_base_s": 0.001, "backoff_max_s": 0.005},
        "tiers": {
            "fast": {"route": [GROQ, GEMINI, CLAUDE], "order": "catalog"},
            "balanced": {"route": [GEMINI, CLAUDE, GROQ], "order": "catalog"},
            "powerful": {"route": [CLAUDE, GROQ, GEMINI], "order": "catalog"},
            "reasoning": {"route": [THINKER, GEMINI, CLAUDE], "order": "catalog"},
        },
    }
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    plans = {"free": list(TIERS)}
    server = server_with(
        flags={"rateLimit": {"enabled": False}, "enableCaching": True},
        env={
            "CHIMERA_CATALOG_FILE": str(tmp_path / "catalog.json"),
            "CHIMERA_TIER_MODELS": json.dumps(plans),
        },
    )
    rng = random.Random(SEED)
    emu.timing(provider="*", ttft_ms=5, chunk_ms=1, chunks=16)
    for fault in faults(rng, TURNS // 2):
        emu.fault(**fault)
    asks = []
    for n in range(TURNS):
        if n % REPEAT_EVERY == REPEAT_EVERY - 1 and asks:
            asks.append(rng.choice(asks[: max(1, len(asks) - CONCURRENCY)]))  # asked (and done) before
        else:
            asks.append((n, rng.choice(TIERS)))

    def turn(ask: tuple[int, str]) -> str:
        n, tier = ask
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION.format(n=n)}]
        with httpx2.Client(timeout=60) as http:
            response, parts = chat(
                http, server.url, {"messages": messages, "config": {"model": tier}}, alice_key
            )
        assert response.status_code == 200 and parts[-1] == DONE, (n, response.status_code)
        return parts[0]["messageId"]

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        answers = list(pool.map(turn, asks))

    requests = [r for r in emu.requests() if r["body"] is not None]
    taken = [r for r in requests if r["outcome"].get("billed")]
    rows = list(UsageMetric.objects.filter(message_id__in=answers))
    hits = [r for r in rows if r.cache_hit]
    assert len(rows) == len(requests) + len(hits), (len(rows), len(requests))  # every attempt has its row
    assert all(r.cost_usd == 0 and r.saved_cost_usd > 0 for r in hits)
    recorded = sum((r.cost_usd for r in rows), Decimal(0))
    billed = sum((vendor_bill(r) for r in taken), Decimal(0))
    broken = [r for r in taken if not r["outcome"]["finished"] or r["outcome"].get("fault")]
    estimated = sum((r.cost_usd for r in rows if r.input_estimated or r.output_estimated), Decimal(0))
    cached = sum(r.cached_input_tokens for r in rows)
    thinking = sum(r.reasoning_tokens for r in rows)
    summary = (
        f"{TURNS} turns (seed {SEED}), {len(requests)} requests, {len(taken)} billed, {len(broken)} broken, "
        f"{len(hits)} cache hits, {cached} cached input and {thinking} reasoning tokens; recorded "
        f"${recorded:.6f}, vendors billed ${billed:.6f}, estimated share ${estimated:.6f}"
    )
    print(summary)
    assert len(broken) >= TURNS // 5, summary  # the run really was faulted
    assert len(hits) >= TURNS // 20 and cached > 0 and thinking > 0, summary  # and mixed
    assert abs(recorded - billed) < Decimal("0.01"), summary

    # The rollups of the hours (and days) the run spans hold exactly the raw rows' sums.
    spans = UsageMetric.objects.aggregate(first=Min("created_at"), last=Max("created_at"))
    hours = {rollups.floor_hour(spans["first"]), rollups.floor_hour(spans["last"])}
    for hour in hours:
        rollups.roll_hour(hour)
    for day in {rollups.floor_day(h) for h in hours}:
        rollups.roll_day(day)
    raw = rollups.total(rollups.group(UsageMetric.objects.all()))
    for period in ("hour", "day"):
        rolled = rollups.total(((), r) for r in UsageRollup.objects.filter(period=period))
        assert rolled.as_fields() == raw.as_fields(), period
    assert raw.cost_usd == sum((r.cost_usd for r in UsageMetric.objects.all()), Decimal(0))
