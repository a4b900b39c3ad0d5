"""Token counts a vendor never reported, estimated — and calibrated on the counts it did report.

A stream cut before the vendor's usage arrived, Stop, or a process that died mid-answer leaves some
counts unknown; the vendor still bills them. No tokenizer for these vendors' models ships in a package
usable offline, so an unknown count is the text's length divided by a characters-per-token ratio:
the catalog's (``chars_per_token``, per provider or model, default 4) until this process has seen the
vendor report counts for enough text of that model, then the ratio of those reports (a running,
slowly forgetting sum, apart for prompts and for output). Estimates therefore follow each vendor's
real tokenizer on the traffic it actually gets (languages, code), and the usage row still says that
the count was estimated.
"""

from __future__ import annotations

import json
import math
import threading

from providers.base import ProviderRequest
from providers.catalog import DEFAULT_CHARS_PER_TOKEN, get_catalog

# Reported tokens needed before the learned ratio replaces the catalog's; how much of the past is
# kept at each observation (a half-life of about 700 attempts).
MIN_TOKENS = 500
DECAY = 0.999
_RATIO_BOUNDS = (0.5, 20.0)

_lock = threading.Lock()
_seen: dict[tuple[str, str, str], list[float]] = {}  # (provider, model, "in"|"out") -> [chars, tokens]


def prompt_chars(request: ProviderRequest) -> int:
    """The characters a vendor tokenizes for a request: messages, earlier tool calls, tool schemas."""
    chars = sum(len(m.content) + 1 for m in request.messages)
    chars += sum(len(json.dumps(c.args)) for m in request.messages for c in m.tool_calls)
    if request.tools:
        chars += len(json.dumps(request.tools))
    return chars


def observe(provider: str, model: str, kind: str, chars: int, tokens: int) -> None:
    """The vendor reported ``tokens`` for ``chars`` characters of prompt ("in") or output ("out")."""
    if chars <= 0 or tokens <= 0:
        return
    with _lock:
        entry = _seen.setdefault((provider, model, kind), [0.0, 0.0])
        entry[0] = entry[0] * DECAY + chars
        entry[1] = entry[1] * DECAY + tokens


def chars_per_token(provider: str, model: str, kind: str) -> float:
    entry = _seen.get((provider, model, kind))
    if entry is not None and entry[1] >= MIN_TOKENS:
        low, high = _RATIO_BOUNDS
        return min(high, max(low, entry[0] / entry[1]))
    spec = get_catalog().model(provider, model)
    return spec.chars_per_token if spec is not None else DEFAULT_CHARS_PER_TOKEN


def estimate(provider: str, model: str, kind: str, chars: int) -> int:
    """Tokens for ``chars`` characters (rounded up: a non-empty text is at least one token)."""
    if chars <= 0:
        return 0
    return max(1, math.ceil(chars / chars_per_token(provider, model, kind)))


def reset() -> None:
    """Forget what was learned (tests)."""
    with _lock:
        _seen.clear()
