"""The emulated vendors' bill, computed apart from Chimera's catalog and pricing code."""

from __future__ import annotations

from decimal import Decimal

# The vendors' price lists, written out here (USD per million tokens: input, cache reads, output)
# apart from the catalog, as an operator checking the bill would.
PRICES = {
    ("groq", "llama-3.1-8b-instant"): ("0.05", "0.05", "0.08"),
    ("groq", "llama-3.3-70b-versatile"): ("0.59", "0.59", "0.79"),
    ("groq", "openai/gpt-oss-120b"): ("0.15", "0.075", "0.60"),
    ("gemini", "gemini-2.5-flash-lite"): ("0.10", "0.01", "0.40"),
    ("gemini", "gemini-2.5-flash"): ("0.30", "0.03", "2.50"),
    ("gemini", "gemini-2.5-pro"): ("1.25", "0.125", "10.00"),
    ("anthropic", "claude-haiku-4-5"): ("1.00", "0.10", "5.00"),
    ("anthropic", "claude-sonnet-4-5"): ("3.00", "0.30", "15.00"),
    ("anthropic", "claude-opus-4-1"): ("15.00", "1.50", "75.00"),
}


def vendor_bill(request: dict) -> Decimal:
    """What the emulated vendor bills for one request, from its own log (cache reads at its rate)."""
    billed = request["outcome"].get("billed")
    if not billed:
        return Decimal(0)
    price_in, price_cached, price_out = (Decimal(p) for p in PRICES[(request["provider"], request["model"])])
    cached = billed["cached_input_tokens"]
    return (
        (billed["input_tokens"] - cached) * price_in
        + cached * price_cached
        + billed["output_tokens"] * price_out
    ) / 1_000_000
