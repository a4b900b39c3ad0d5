"""Cut text into passages of about 500-800 characters along paragraphs, lines and sentences.

A passage ends at a paragraph break once it is long enough, otherwise at a line or sentence end
before it grows past the maximum; a sentence longer than that is cut at a space. Consecutive
passages of one paragraph share their boundary sentence when it is short, so a statement split
across two passages is still found whole in one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_CHARS = 500
MAX_CHARS = 800
OVERLAP_CHARS = 160  # the longest boundary sentence repeated at the start of the next passage

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# A sentence ends at . ! ? or …, maybe followed by one closing quote or bracket, before white space.
_SENTENCE_END = re.compile("(?<=[.!?\u2026][\"'\u201d\u2019)\\]])\\s+|(?<=[.!?\u2026])\\s+")


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str
    joiner: str  # what goes before it when it follows another piece: "\n\n", "\n" or " "


def normalise(text: str) -> str:
    """Unix newlines, no trailing spaces, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _cut_long(sentence: str) -> list[str]:
    pieces = []
    while len(sentence) > MAX_CHARS:
        cut = sentence.rfind(" ", MAX_CHARS // 2, MAX_CHARS)
        if cut == -1:
            cut = MAX_CHARS  # one enormous word: cut it anyway
        pieces.append(sentence[:cut].rstrip())
        sentence = sentence[cut:].lstrip()
    if sentence:
        pieces.append(sentence)
    return pieces


def _pieces(text: str) -> list[_Piece]:
    pieces: list[_Piece] = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        joiner = "\n\n"
        for line in paragraph.split("\n"):
            if not line.strip():
                continue
            for sentence in _SENTENCE_END.split(line.strip()):
                for piece in _cut_long(sentence.strip()):
                    pieces.append(_Piece(piece, joiner))
                    joiner = " "
            joiner = "\n"
    return pieces


def _length(pieces: list[_Piece]) -> int:
    return sum(len(p.text) for p in pieces) + sum(len(p.joiner) for p in pieces[1:])


def _render(pieces: list[_Piece]) -> str:
    return pieces[0].text + "".join(p.joiner + p.text for p in pieces[1:])


def split_into_chunks(text: str) -> list[str]:
    """The passages of ``text`` in order (none for blank text)."""
    chunks: list[str] = []
    current: list[_Piece] = []
    for piece in _pieces(normalise(text)):
        if current and piece.joiner == "\n\n" and _length(current) >= MIN_CHARS:
            chunks.append(_render(current))  # a paragraph ends a passage that is long enough
            current = []
        elif current and _length([*current, piece]) > MAX_CHARS:
            chunks.append(_render(current))
            tail = current[-1]
            overlap = len(current) > 1 and len(tail.text) <= OVERLAP_CHARS and piece.joiner != "\n\n"
            current = [tail] if overlap and _length([tail, piece]) <= MAX_CHARS else []
        current.append(piece)
    if current:
        chunks.append(_render(current))
    return chunks
