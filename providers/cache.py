"""Response cache: identical prompts get the stored answer instead of a provider call.

The spec's ``caching: {ttl: 3600, keyStrategy: 'hash'}``: the key is a SHA-256 of what the
answer depends on (the tier's route scope, the messages, temperature, max_tokens, tools,
reasoning); the value is the finished answer with the provider, model and usage it came
from. Stored in Django's cache (Redis when ``REDIS_URL`` is set, local memory otherwise).

Only complete answers are stored: finish reason "stop", no tool calls. Answers at any
temperature are cached: a sampled answer replayed is still an answer drawn from the same
distribution, the spec asks for identical prompts to be served from cache (its >30 % cost
target depends on it), and a person who wants a different answer regenerates, which
bypasses the cache (``Router.stream(use_cache=False)``). Temperature is part of the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches

from providers.base import ChatMessage
from providers.events import Usage

log = logging.getLogger(__name__)

VERSION = "v1"


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    text: str
    reasoning: str
    provider: str
    model: str
    usage: Usage
    finish_reason: str = "stop"
    chunks: tuple[str, ...] = ()  # the text as it streamed from the provider (replayed the same way)

    def to_json(self) -> dict[str, Any]:
        u = self.usage
        return {
            "text": self.text,
            "reasoning": self.reasoning,
            "provider": self.provider,
            "model": self.model,
            "usage": [u.input_tokens, u.output_tokens, u.cached_input_tokens, u.reasoning_tokens],
            "finish": self.finish_reason,
            "chunks": list(self.chunks),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CachedAnswer:
        i, o, c, r = data["usage"]
        return cls(
            data["text"],
            data["reasoning"],
            data["provider"],
            data["model"],
            Usage(i, o, c, r),
            data["finish"],
            tuple(data.get("chunks") or ()),
        )

    def pieces(self) -> Iterator[str]:
        """The text as it streamed (an answer stored before chunks were kept: in about eight pieces)."""
        if self.chunks and "".join(self.chunks) == self.text:
            yield from self.chunks
            return
        yield from self.split()

    def split(self, size: int = 0) -> Iterator[str]:
        """The text in a few pieces (about eight, cut after a space)."""
        text = self.text
        size = size or max(64, len(text) // 8 + 1)
        start = 0
        while start < len(text):
            end = text.find(" ", start + size)
            end = len(text) if end == -1 else end + 1
            yield text[start:end]
            start = end


class ResponseCache:
    def __init__(
        self, *, ttl_s: int | None = None, alias: str = "default", prefix: str = "chimera:answer"
    ) -> None:
        self._ttl_s = ttl_s
        self.alias = alias
        self.prefix = f"{prefix}:{VERSION}:"

    @property
    def ttl_s(self) -> int:
        if self._ttl_s is not None:
            return self._ttl_s
        from providers.catalog import get_catalog

        return get_catalog().cache_ttl_s

    def key(
        self,
        *,
        scope: str,
        messages: Sequence[ChatMessage],
        temperature: float,
        max_tokens: int,
        tools: Sequence[dict[str, Any]] = (),
        reasoning: bool = False,
    ) -> str:
        payload = json.dumps(
            [
                scope,
                [[m.role, m.content] for m in messages],
                float(temperature),
                max_tokens,
                list(tools),
                reasoning,
            ],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
        return self.prefix + hashlib.sha256(payload.encode()).hexdigest()

    async def get(self, key: str) -> CachedAnswer | None:
        try:
            data = await caches[self.alias].aget(key)
            return CachedAnswer.from_json(data) if data else None
        except Exception:  # a broken cache is a miss, never a failed turn
            log.warning("response cache read failed", exc_info=True)
            return None

    async def put(self, key: str, answer: CachedAnswer) -> None:
        try:
            await caches[self.alias].aset(key, answer.to_json(), self.ttl_s)
        except Exception:
            log.warning("response cache write failed", exc_info=True)
