"""Hybrid retrieval over one user's documents and conversations: full text and embeddings, fused.

Two rankings of the user's chunks:
- full text (``knowledge.fulltext``): exact words, names, codes, numbers — what embeddings blur;
- embedding similarity: the query's vector against every chunk's, by dot product in numpy.
  Chunks less similar than ``CHIMERA_KNOWLEDGE_MIN_SIMILARITY`` are left out of this ranking, so a
  query about nothing the user has does not drag in their nearest, unrelated passages.
They are merged by reciprocal rank fusion: a chunk scores the sum of 1 / (60 + its rank) over the
rankings it appears in. RRF needs no calibration between ts_rank / bm25 and cosine scores, and a
chunk found by both rises above one found by either alone.

Why numpy and not pgvector: PostgreSQL here has no ``vector`` extension (Debian ships none for
PG 15), and a ``vector`` column cannot be in a migration that must run on every database. So
embeddings are bytes in every database, and the similarity is computed over the user's chunks in
process (numpy: ~4 ms for 10,000 chunks), from a per-process copy of the user's vectors that is
re-read whenever their chunks change (``_user_vectors``).
``pgvector_available()`` tells (and the first search logs) whether the extension could be used. The
path with it: a migration that runs only where ``pg_available_extensions`` lists ``vector``
(``CREATE EXTENSION vector``; ``ALTER TABLE knowledge_chunk ADD COLUMN embedding_v vector(384)``;
an HNSW index with ``vector_cosine_ops``), writes filling both columns, and this ranking becoming
``ORDER BY embedding_v <=> %s LIMIT n`` filtered by user. It is not written here because it could
not be run or tested on these machines.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import Count, Max
from django.urls import reverse

from knowledge import embedding, fulltext, offload
from knowledge.extract import clean_text
from knowledge.models import Chunk

log = logging.getLogger(__name__)

CANDIDATES = 50  # from each ranking, before fusion
RRF_K = 60  # the usual constant: it keeps one ranking's top spot from outweighing agreement
MAX_QUERY_CHARS = 1000
MAX_K = 50


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrieved chunk, with where it came from and a link to it."""

    chunk_id: uuid.UUID
    text: str
    score: float  # the fused RRF score: higher is better; comparable only within one search
    title: str
    url: str  # /knowledge/<document>/#chunk-<chunk> or /c/<conversation>/#m-<message>
    document_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None
    message_id: uuid.UUID | None = None


@cache
def pgvector_available() -> bool:
    """Could this PostgreSQL install pgvector? (Checked once per process; False elsewhere.)"""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')")
        row = cursor.fetchone()
    available = bool(row and row[0])
    log.info(
        "knowledge: embedding similarity in numpy; pgvector %s",
        "is available on this server (not used yet)" if available else "is not available",
    )
    return available


@dataclass(frozen=True, slots=True)
class _Vectors:
    signature: tuple[int, Any]  # (chunk count, newest created_at): changes with any insert or delete
    ids: list[uuid.UUID]
    matrix: np.ndarray  # one unit vector per row, in ``ids`` order


_vectors: OrderedDict[str, _Vectors] = OrderedDict()
_vectors_lock = threading.Lock()


def _user_vectors(user_id: Any) -> _Vectors:
    """The user's chunk vectors, kept per process for the most recent users.

    Reading every vector (1.5 KB a chunk) is most of a search's time at thousands of chunks (about
    0.2 s for 10,000 here); a count and a max on the user's index say whether the copy is current.
    The signature is read before the vectors, so a write in between only causes a reload later.
    """
    summary = Chunk.objects.filter(user_id=user_id).aggregate(count=Count("id"), newest=Max("created_at"))
    signature = (summary["count"], summary["newest"])
    key = str(user_id)
    with _vectors_lock:
        cached = _vectors.get(key)
        if cached is not None and cached.signature == signature:
            _vectors.move_to_end(key)
            return cached
    rows = list(Chunk.objects.filter(user_id=user_id).values_list("id", "embedding"))
    matrix = embedding.from_bytes(b"".join(bytes(vector) for _, vector in rows))
    found = _Vectors(
        signature, [chunk_id for chunk_id, _ in rows], matrix.reshape(len(rows), embedding.DIMENSIONS)
    )
    with _vectors_lock:
        _vectors[key] = found
        _vectors.move_to_end(key)
        while len(_vectors) > settings.CHIMERA_KNOWLEDGE_CACHED_USERS:
            _vectors.popitem(last=False)
    return found


def vector_ranking(user_id: Any, query: str, limit: int = CANDIDATES) -> list[tuple[uuid.UUID, float]]:
    """``user_id``'s chunks most similar to ``query``, with their cosine similarity, best first."""
    vectors = _user_vectors(user_id)
    if not vectors.ids:
        return []  # nothing to compare with: do not even load the model
    similarities = vectors.matrix @ embedding.embed([query])[0]
    order = np.argsort(-similarities, kind="stable")[:limit]
    floor = settings.CHIMERA_KNOWLEDGE_MIN_SIMILARITY
    return [(vectors.ids[i], float(similarities[i])) for i in order if similarities[i] >= floor]


def fulltext_ranking(user_id: Any, query: str, limit: int = CANDIDATES) -> list[uuid.UUID]:
    """``user_id``'s chunks matching words of ``query``, best first."""
    return fulltext.rank(user_id, query, limit)


def fuse(*rankings: list[uuid.UUID]) -> list[tuple[uuid.UUID, float]]:
    """Reciprocal rank fusion of rankings (best first) into one, with each id's score.

    Equal scores are ordered by the first ranking, then the next (so pass the one to trust most
    first).
    """
    scores: dict[uuid.UUID, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
    positions = [{chunk_id: n for n, chunk_id in enumerate(ranking)} for ranking in rankings]

    def order(item: tuple[uuid.UUID, float]) -> tuple[float, ...]:
        return (-item[1], *(float(p.get(item[0], len(p))) for p in positions))

    return sorted(scores.items(), key=order)


def search(user_id: Any, query: str, k: int = 5) -> list[Passage]:
    """The ``k`` passages of ``user_id``'s knowledge that best answer ``query``, best first.

    Only the user's own documents and messages are searched. Synchronous (model and ORM): async
    code calls ``asearch``.
    """
    query = clean_text(query).strip()[:MAX_QUERY_CHARS]
    if not query or user_id is None:
        return []
    k = max(1, min(int(k), MAX_K))
    if connection.vendor == "postgresql":
        pgvector_available()
    by_text = fulltext_ranking(user_id, query)
    by_meaning = [chunk_id for chunk_id, _ in vector_ranking(user_id, query)]
    top = fuse(by_meaning, by_text)[:k]  # on a tie, the passage closer in meaning first
    chunks = Chunk.objects.filter(user_id=user_id, id__in=[chunk_id for chunk_id, _ in top]).select_related(
        "document"
    )
    found = {chunk.id: chunk for chunk in chunks}
    return [_passage(found[chunk_id], score) for chunk_id, score in top if chunk_id in found]


async def asearch(user_id: Any, query: str, k: int = 5) -> list[Passage]:
    """``search`` for async callers: runs on the knowledge threads, never on the event loop."""
    return await offload.run(search, user_id, query, k)


def _passage(chunk: Chunk, score: float) -> Passage:
    if chunk.document is not None:
        url = reverse("knowledge:document", args=[chunk.document.id]) + f"#chunk-{chunk.id}"
        return Passage(chunk.id, chunk.text, score, chunk.document.title, url, document_id=chunk.document.id)
    who = "You" if chunk.role == "user" else "Assistant"
    title = f"{who}, in a conversation of {chunk.created_at:%Y-%m-%d}"
    url = reverse("chat:conversation", args=[chunk.conversation_id]) + f"#m-{chunk.message_id}"
    return Passage(
        chunk.id,
        chunk.text,
        score,
        title,
        url,
        conversation_id=chunk.conversation_id,
        message_id=chunk.message_id,
    )
