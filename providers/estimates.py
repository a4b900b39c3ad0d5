"""Token counts a vendor never reported, estimated — and calibrated on the counts it did report.

A stream cut before the vendor's usage arrived, Stop, or a process that died mid-answer leaves some
counts unknown; the vendor still bills them. No tokenizer for these vendors' models ships in a package
usable offline, so an unknown count is the text's length divided by a characters-per-token ratio:
the catalog's (``chars_per_token``, per provider or model, default 4) until this process has seen the
vendor report counts for enough text of that model, then the ratio of those reports (a running,
slowly forgetting sum, apart for prompts and for output). Estimates therefore follow each vendor's
real tokenizer on the traffic it actually gets (languages, code), and the usage row still says that
the count was estimated.

Cached input is estimated the way the vendors' prompt caches work: a prompt a vendor has seen lately
is cached. Every prompt sent is remembered (per provider and model, for the 5 minutes vendors keep a
cached prompt) with its token count, as the vendor reported it or as estimated; a later request whose
counts never came is billed as cached the longest of those prompts it starts with — the whole of it
when it was sent before, its prefix (every message but the last) when that was a prompt of its own.
Vendors also cache prefixes of prompts that were never sent alone, which this cannot know: there the
estimate bills the full price, the side that never under-counts.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict

from providers.base import ProviderRequest
from providers.catalog import DEFAULT_CHARS_PER_TOKEN, get_catalog

# Reported tokens needed before the learned ratio replaces the catalog's; how much of the past is
# kept at each observation (a half-life of about 700 attempts).
MIN_TOKENS = 500
DECAY = 0.999
_RATIO_BOUNDS = (0.5, 20.0)

# How long a vendor keeps a prompt cached (Anthropic's and OpenAI's default: 5 minutes), and how many
# prompts a process remembers.
PROMPT_TTL_S = 300.0
MAX_PROMPTS = 4096

_lock = threading.Lock()
_seen: dict[tuple[str, str, str], list[float]] = {}  # (provider, model, "in"|"out") -> [chars, tokens]
_prompts: OrderedDict[tuple[str, str, str], tuple[float, int]] = OrderedDict()  # -> (sent at, tokens)


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


def _key(
    provider: str, model: str, request: ProviderRequest, upto: int | None = None
) -> tuple[str, str, str]:
    messages = request.messages[:upto]
    blob = json.dumps(
        [[(m.role, m.content, [c.args for c in m.tool_calls]) for m in messages], request.tools],
        sort_keys=True,
        default=str,
    )
    return provider, model, hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def observe_prompt(provider: str, model: str, request: ProviderRequest, input_tokens: int) -> None:
    """The vendor was sent this prompt, of ``input_tokens`` tokens (reported or estimated)."""
    if input_tokens <= 0:
        return
    key = _key(provider, model, request)
    with _lock:
        _prompts[key] = (time.monotonic(), input_tokens)
        _prompts.move_to_end(key)
        while len(_prompts) > MAX_PROMPTS:
            _prompts.popitem(last=False)


def estimate_cached(provider: str, model: str, request: ProviderRequest, input_tokens: int) -> int:
    """Cached tokens of a prompt whose counts never came: all of it when the same prompt went to this
    provider and model within the cache's lifetime, its prefix's when the prefix did, else none."""
    now = time.monotonic()
    whole = _prompts.get(_key(provider, model, request))
    if whole is not None and now - whole[0] <= PROMPT_TTL_S:
        return input_tokens
    if len(request.messages) > 1:
        prefix = _prompts.get(_key(provider, model, request, -1))
        if prefix is not None and now - prefix[0] <= PROMPT_TTL_S:
            return min(prefix[1], input_tokens)
    return 0


def reset() -> None:
    """Forget what was learned (tests)."""
    with _lock:
        _seen.clear()
        _prompts.clear()
