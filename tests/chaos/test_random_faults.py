"""Randomized provider faults over many turns through the API, each checked from the database.

Every turn gets a random mix from the emulator (503 / 500, 429 with Retry-After, a stall, a cut after
N tokens, a dropped connection, a malformed chunk, two providers down, all down). After each:
the user's message is saved; the saved answer's text is exactly what the client assembled; the
stream ended with one finish or one explicit error; there is one usage row per upstream attempt the
emulator saw; no 5xx. CHIMERA_CHAOS_TURNS sets the number of turns (CI: 16; the README says how
to run more); CHIMERA_CHAOS_SEED replays a run.
"""

from __future__ import annotations

import os
import random

import pytest

from chat.models import Message
from flags import runtime as flags
from tests.api.helpers import DONE, chat, text_of, types
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db(transaction=True)

TURNS = int(os.environ.get("CHIMERA_CHAOS_TURNS", "16"))
SEED = int(os.environ.get("CHIMERA_CHAOS_SEED", "20261203"))
PROVIDERS = ("groq", "gemini", "anthropic")


def random_faults(rng: random.Random) -> list[dict]:
    """One turn's faults: nothing, one provider misbehaving, two down, or all down."""
    scenario = rng.choice(["none", "one", "one", "one", "two-down", "all-down"])
    if scenario == "none":
        return []
    if scenario == "two-down":
        return [{"provider": p, "kind": "status", "status": 503} for p in rng.sample(PROVIDERS, 2)]
    if scenario == "all-down":
        return [{"provider": "*", "kind": "status", "status": rng.choice([500, 502, 503])}]
    provider = rng.choice(PROVIDERS)
    kind = rng.choice(["status", "rate", "stall", "cut", "abort", "malformed"])
    times = rng.randint(1, 3)
    return [
        {
            "status": {
                "provider": provider,
                "kind": "status",
                "status": rng.choice([500, 503]),
                "times": times,
            },
            "rate": {"provider": provider, "kind": "status", "status": 429, "retry_after": 1, "times": times},
            "stall": {
                "provider": provider,
                "kind": "stall",
                "after_tokens": rng.randint(0, 8),
                "stall_ms": 400,
            },
            "cut": {"provider": provider, "kind": "cut", "after_tokens": rng.randint(0, 15), "times": times},
            "abort": {"provider": provider, "kind": "cut", "after_tokens": rng.randint(1, 15), "abort": True},
            "malformed": {"provider": provider, "kind": "malformed", "after_tokens": rng.randint(0, 10)},
        }[kind]
    ]


def test_random_faults_lose_nothing_and_bill_every_attempt(live_server, emu, http, alice, alice_key):
    flags.set_flags({"rateLimit": {"enabled": False}})
    rng = random.Random(SEED)
    emu.timing(provider="*", ttft_ms=5, chunk_ms=2, chunks=30)
    outcomes = {"complete": 0, "incomplete": 0, "error": 0}
    for turn in range(TURNS):
        emu.clear()
        emu.timing(provider="*", ttft_ms=5, chunk_ms=2, chunks=30)
        faults = random_faults(rng)
        for fault in faults:
            emu.fault(**fault)
        tier = rng.choice(["fast", "balanced"])
        body = {"messages": [{"role": "user", "content": f"Chaos turn {turn}"}], "config": {"model": tier}}
        response, parts = chat(http, live_server.url, body, alice_key)
        where = f"turn {turn} (seed {SEED}): {faults}"

        assert response.status_code == 200, (where, response.status_code)
        assert parts and parts[-1] == DONE, where
        ends = [t for t in types(parts) if t in ("finish", "error")]
        assert ends in (["finish"], ["error", "finish"]), (where, ends)  # an error is explicit, then the end
        answer_id = parts[0]["messageId"]
        answer = Message.objects.get(pk=answer_id)
        assert Message.objects.filter(pk=answer.parent_message_id, content=f"Chaos turn {turn}").exists(), (
            where
        )
        assert answer.status in ("complete", "incomplete", "error"), where
        assert answer.content == text_of(parts), (where, answer.content[:80], text_of(parts)[:80])
        if "error" in ends:
            assert answer.status != "complete", where
        attempts = [r for r in emu.requests() if r["body"] is not None]
        rows = UsageMetric.objects.filter(message_id=answer_id).count()
        assert rows == len(attempts), (where, rows, len(attempts))
        outcomes[answer.status] += 1
    assert outcomes["complete"] >= TURNS // 3, outcomes  # failover saved most of them
