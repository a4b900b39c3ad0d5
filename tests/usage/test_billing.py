"""Broken attempts billed as the vendor bills them, on each wire, against the emulator's own bill.

The emulator's request log says what each request would be billed (``outcome.billed``: the prompt's
input tokens once the stream started, and every output token it sent). For each wire (OpenAI-compatible
for Groq, Gemini, Anthropic) a server with one attempt per turn (no retries, no failover) is driven
through the API: a stream cut after k chunks, a vendor error mid-stream, a first-token timeout, Stop
during the text and Stop during the thinking. Each turn's one usage row must carry the vendor's own
input count where the wire reported it before the break (Gemini and Anthropic do; the OpenAI wire
sends usage only at the end), an estimate — never 0 — where it did not, and say which is which.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from flags import runtime as flags
from tests.api.helpers import chat, sse_parts
from tests.usage.vendor import vendor_bill
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db(transaction=True)

# Per wire: the provider, the emulator's path segment, and a model that thinks first.
WIRES = {
    "openai": ("groq", "groq", "openai/gpt-oss-120b"),
    "gemini": ("google", "gemini", "gemini-2.5-pro"),
    "anthropic": ("anthropic", "anthropic", "claude-opus-4-1"),
}


@pytest.fixture
def one_attempt_server(server_with, tmp_path):
    """A server for one wire: one attempt per turn, a short first-token timeout, the reasoning tier on
    that wire's thinking model, every tier open to the free plan."""

    def start(wire: str):
        provider, _, thinker = WIRES[wire]
        catalog = {
            "providers": {
                p: {"max_retries": 0, "first_token_timeout_s": 1.0} for p in ("groq", "google", "anthropic")
            },
            "tiers": {"reasoning": {"route": [[provider, thinker]], "order": "catalog"}},
        }
        path = tmp_path / f"catalog-{wire}.json"
        path.write_text(json.dumps(catalog))
        plans = {"free": ["fast", "balanced", "powerful", "reasoning"]}
        return server_with(
            flags={
                "enableFailover": False,
                "enableCaching": False,
                "enableAIGateway": False,
                "providers": {"primary": provider},
                "rateLimit": {"enabled": False},
            },
            env={"CHIMERA_CATALOG_FILE": str(path), "CHIMERA_TIER_MODELS": json.dumps(plans)},
        )

    return start


def one_row(answer_id: str) -> UsageMetric:
    rows = list(UsageMetric.objects.filter(message_id=answer_id))
    assert len(rows) == 1, [(r.provider, r.error) for r in rows]
    return rows[0]


def reported_early(wire: str) -> bool:
    """Gemini and Anthropic report the prompt's tokens with the first event; the OpenAI wire at the end."""
    return wire in ("gemini", "anthropic")


def check_row(wire: str, row: UsageMetric, request: dict, what: str) -> None:
    billed = request["outcome"]["billed"]
    assert row.input_tokens > 0, what  # never 0: the vendor billed the prompt
    if reported_early(wire) and what != "first-token timeout":
        assert (row.input_tokens, row.input_estimated) == (billed["input_tokens"], False), what
    elif not reported_early(wire):
        assert row.input_estimated, what
    assert row.output_estimated, what  # the stream never reached the vendor's final count
    if billed["output_tokens"]:
        assert row.output_tokens > 0, what
    assert row.cost_usd is not None


@pytest.mark.parametrize("wire", list(WIRES))
def test_every_broken_attempt_is_billed_with_what_the_vendor_reported(
    wire, one_attempt_server, emu, http, alice_key
):
    server = one_attempt_server(wire)
    _, segment, _ = WIRES[wire]

    def turn(text: str, tier: str = "balanced"):
        response, parts = chat(
            http,
            server.url,
            {"messages": [{"role": "user", "content": text}], "config": {"model": tier}},
            alice_key,
        )
        assert response.status_code == 200
        return parts[0]["messageId"], [r for r in emu.requests() if r["body"] is not None][-1]

    scenarios = {
        "cut after 6 chunks": {"kind": "cut", "after_tokens": 6},
        "vendor error mid-stream": {"kind": "malformed", "after_tokens": 4},
        "dropped connection": {"kind": "cut", "after_tokens": 5, "abort": True},
        "first-token timeout": {"kind": "stall", "stall_ms": 5000},
    }
    emu.timing(provider="*", ttft_ms=5, chunk_ms=2, chunks=30)
    for what, fault in scenarios.items():
        emu.fault(provider=segment, times=1, **fault)
        answer_id, request = turn(f"Explain tides, {what}")
        row = one_row(answer_id)
        assert row.error, what
        check_row(wire, row, request, what)

    # Stop during the text, then during the thinking: billed the prompt and what streamed so far.
    emu.timing(provider="*", ttft_ms=5, chunk_ms=60, chunks=200)
    for what, tier, wait_for in (
        ("stop during text", "balanced", "text-delta"),
        ("stop during thinking", "reasoning", "reasoning-delta"),
    ):
        with http.stream(
            "POST",
            server.url + "/api/chat/v2",
            json={
                "messages": [{"role": "user", "content": f"Tell a long tale, {what}"}],
                "config": {"model": tier},
            },
            headers={"Authorization": f"Bearer {alice_key}"},
        ) as response:
            conversation_id, answer_id = (
                response.headers["x-conversation-id"],
                response.headers["x-message-id"],
            )
            seen = []
            stream = sse_parts(response)
            for part in stream:
                seen.append(part)
                if sum(1 for p in seen if isinstance(p, dict) and p["type"] == wait_for) >= 3:
                    break
            assert (
                not any(isinstance(p, dict) and p["type"] == "text-delta" for p in seen)
                or wait_for == "text-delta"
            )
            stopped = http.post(
                f"{server.url}/api/conversations/{conversation_id}/messages/{answer_id}/stop",
                headers={"Authorization": f"Bearer {alice_key}"},
            )
            assert stopped.status_code == 200 and stopped.json()["stopped"] is True, stopped.text
            list(stream)
        row = one_row(answer_id)
        request = [r for r in emu.requests() if r["body"] is not None][-1]
        assert row.error == "stopped by the user", what
        check_row(wire, row, request, what)
        if wait_for == "reasoning-delta":
            assert row.reasoning_tokens > 0 and row.output_tokens >= row.reasoning_tokens, what
        # To the cent against the vendor's own bill for this request.
        assert abs(row.cost_usd - vendor_bill(request)) < Decimal("0.01"), (
            what,
            row.cost_usd,
            vendor_bill(request),
        )
    flags.set_flags({})
