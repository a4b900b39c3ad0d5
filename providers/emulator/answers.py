"""Deterministic answer text for the emulator.

The same conversation always gets the same answer, so tests can assert on it and
the benchmark can cache it. Answers are split into word-ish tokens that keep
their leading spacing, the way real providers stream them.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_'-]*")
_TOKEN = re.compile(r"\s*\S+")
_CONTINUE = re.compile(r"\b(continue|go on|keep going|carry on)\b", re.IGNORECASE)
_STOP_WORDS = frozenset(
    """a about above after again all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her
    here hers him his how i if in into is it its itself just me more most my no nor not now of off on once
    only or other our out over own please same she should so some such tell than that the their them then
    there these they this those through to too under until up very was we were what when where which while
    who whom why will with would you your explain describe give write show me short brief quick answer
    question hello hi hey thanks thank okay ok sure know want need like make let something things thing""".split()
)

_ANSWER_SENTENCES = (
    "Here is a short answer about {topic}.",
    "{Topic} is easiest to understand by looking at what it does and why it matters.",
    "In practice, people who work with {topic} start from a clear goal and check each step against it.",
    "A useful rule of thumb is to keep things simple first, then refine the details once the basics work.",
    "Most of the confusion around {topic} comes from mixing up the idea itself with the tools used to apply it.",
    "It also helps to compare a few concrete examples, because the pattern becomes obvious once you see it twice.",
    "The trade-offs are usually about time, cost and reliability, and the right balance depends on your situation.",
    "If you want, I can go deeper into any part of {topic}, with examples.",
)
_CONTINUATION_SENTENCES = (
    "and to pick up where we left off, the next point about {topic} is how the pieces fit together.",
    "Each part builds on the previous one, so it pays to get the foundations right before moving on.",
    "Once that is in place, the remaining details of {topic} tend to follow naturally.",
    "A good way to check your understanding is to explain it in your own words to someone else.",
    "That covers the rest of it; let me know if any step needs more detail.",
)
_REASONING_SENTENCES = (
    "The user is asking about {topic}.",
    "I should start with the core idea, then give a practical angle and a rule of thumb.",
    "Keep it short and concrete, and offer to go deeper at the end.",
)


@dataclass(frozen=True, slots=True)
class Answer:
    text_tokens: tuple[str, ...]
    reasoning_tokens: tuple[str, ...]
    topic: str


def count_tokens(text: str) -> int:
    """Roughly 1.3 tokens per word, like the usual English BPE ratio."""
    return round(len(text.split()) * 1.3)


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _topic(text: str) -> str:
    words = [w for w in _WORD.findall(text) if w.lower() not in _STOP_WORDS and len(w) > 2]
    if not words:
        return "this topic"
    # The longest words carry the topic better than the first ones; keep their order.
    keep = sorted(sorted(range(len(words)), key=lambda i: -len(words[i]))[:3])
    return " ".join(words[i] for i in keep)


@lru_cache(maxsize=4096)
def compose(
    conversation_key: str, last_user: str, continuation: bool, chunks: int | None, reasoning: bool
) -> Answer:
    """The answer for one conversation. ``chunks`` fixes the number of text tokens."""
    seed = zlib.crc32(conversation_key.encode())
    topic = _topic(last_user)
    fill = {"topic": topic, "Topic": topic[:1].upper() + topic[1:]}
    sentences = _CONTINUATION_SENTENCES if continuation else _ANSWER_SENTENCES
    target = chunks if chunks is not None else 40 + seed % 41
    tokens: list[str] = []
    i = 0
    # Opening sentence first, then a seed-dependent walk through the others.
    order = [0, *sorted(range(1, len(sentences)), key=lambda k: (k * 7919 + seed) % 101)]
    while len(tokens) < target:
        sentence = sentences[order[i % len(order)]].format(**fill)
        tokens.extend(tokenize((" " if tokens else "") + sentence))
        i += 1
    if chunks is not None:
        tokens = tokens[:chunks]
    elif len(tokens) > 80:
        tokens = tokens[:80]
        tokens[-1] = tokens[-1].rstrip(",;") + ("" if tokens[-1].endswith(".") else ".")
    if continuation and tokens:
        tokens[0] = " " + tokens[0]
    reasoning_tokens: list[str] = []
    if reasoning:
        reasoning_tokens = tokenize(" ".join(s.format(**fill) for s in _REASONING_SENTENCES))
    return Answer(tuple(tokens), tuple(reasoning_tokens), topic)


def wants_continuation(last_role: str, last_text: str) -> bool:
    return last_role in ("assistant", "model") or bool(_CONTINUE.search(last_text))


def conversation_key(parts: list[tuple[str, str]]) -> str:
    return json.dumps(parts, separators=(",", ":"))


# ---- tools -------------------------------------------------------------------------------------
_DIRECTIVE = re.compile(r"\[\[tool:([A-Za-z_][A-Za-z0-9_]*)")
_QUOTE_LIMIT = 600


def tool_directives(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``[[tool:NAME {json}]]`` directives in ``text``, in order: (name, arguments)."""
    found = []
    decoder = json.JSONDecoder()
    for match in _DIRECTIVE.finditer(text):
        rest = text[match.end() :]
        stripped = rest.lstrip()
        args: Any = {}
        if stripped.startswith("{"):
            try:
                args, _ = decoder.raw_decode(stripped)
            except ValueError:
                args = {}
        found.append((match.group(1), args if isinstance(args, dict) else {"value": args}))
    return found


def next_tool_call(conv: Any, topic: str) -> tuple[str, dict[str, Any]] | None:
    """The tool the emulated model calls now, if any (see the module docstring of the app)."""
    if not conv.tools:
        return None
    answered = len(conv.tool_results)
    directives = [d for d in tool_directives(conv.last_user_text) if d[0] in conv.tools]
    if directives:
        return directives[answered] if answered < len(directives) else None
    if answered:
        return None
    lowered = conv.last_user_text.lower()
    name = next((n for n in conv.tools if n.lower() in lowered), None)
    return (name, {"query": topic}) if name else None


def quote_tool_results(results: list[str]) -> str:
    quoted = " | ".join(" ".join(r.split())[:_QUOTE_LIMIT] for r in results)
    return f"Tool results: {quoted}."
