"""Encoded pieces shared by every watcher of an answer in this process.

A transport encodes each watcher's batches itself (``chat.sse``, ``chat.page``), but the piece of a
batch that carries a delta's text is a pure function of (part, text): two watchers of one answer —
two tabs, a program's stream and its resume — get one encoding of it. Only short texts are kept (a
delta is a network read's worth; a snapshot of a whole answer is not worth keeping), and the memo
is emptied when full rather than ordered: its use is the few milliseconds between two watchers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T", str, bytes)

KEPT_TEXT_CHARS = 1024


class Memo(Generic[T]):
    __slots__ = ("_encode", "_items", "size")

    def __init__(self, encode: Callable[[str, str], T], size: int = 1024) -> None:
        self._encode: Callable[[str, str], T] = encode
        self._items: dict[tuple[str, str], T] = {}
        self.size = size

    def __call__(self, where: str, text: str) -> T:
        key = (where, text)
        piece = self._items.get(key)
        if piece is None:
            piece = self._encode(where, text)
            if len(text) <= KEPT_TEXT_CHARS:
                if len(self._items) >= self.size:
                    self._items.clear()
                self._items[key] = piece
        return piece
