"""Full-text ranking of one user's chunks, in each database's own way (indexes: migration 0002).

Any word of the query may match (OR): questions written as sentences rarely have every word in
one passage, and the ranking puts passages that match more, and rarer, words first. Quoting and
operators in the query are not interpreted: it is text from a person or a model, not a query
language.

- PostgreSQL: the ``search`` tsvector (English stemming, stop words dropped) against the query's
  lexemes from ``plainto_tsquery``, joined with ``|``; ranked by ``ts_rank``.
- SQLite: the FTS5 table (Porter stemming) against the query's words, each quoted, joined with OR
  (a few English stop words dropped, as PostgreSQL does); ranked by ``bm25``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.db import connection

from knowledge.models import Chunk

MAX_TERMS = 32

# Words too common to say anything (PostgreSQL's English configuration drops these and more).
STOP_WORDS = frozenset(
    "a an and are as at be but by can do does did for from had has have how i if in into is it its "
    "me my no not of on or our so than that the their them then there these they this to was we "
    "were what when where which who why will with would you your".split()
)

_PG = """
    SELECT c.id
    FROM knowledge_chunk c,
         CAST(replace(CAST(plainto_tsquery('english', %s) AS text), ' & ', ' | ') AS tsquery) q
    WHERE c.user_id = %s AND c.search @@ q
    ORDER BY ts_rank(c.search, q) DESC, c.created_at DESC
    LIMIT %s
"""

_SQLITE = """
    SELECT k.chunk_id
    FROM knowledge_chunk_fts
    JOIN knowledge_chunk_fts_key k ON k.fts_rowid = knowledge_chunk_fts.rowid
    JOIN knowledge_chunk c ON c.id = k.chunk_id
    WHERE knowledge_chunk_fts MATCH %s AND c.user_id = %s
    ORDER BY bm25(knowledge_chunk_fts), c.created_at DESC
    LIMIT %s
"""


def sqlite_match(query: str) -> str:
    """An FTS5 query matching any of the words of ``query`` ("" when there is none)."""
    words = [w for w in re.findall(r"\w+", query.lower()) if w not in STOP_WORDS]
    terms = list(dict.fromkeys(words))[:MAX_TERMS]
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def rank(user_id: Any, query: str, limit: int) -> list[uuid.UUID]:
    """Ids of ``user_id``'s chunks matching ``query``, best first (empty on other databases)."""
    if not re.search(r"\w", query):
        return []
    # Raw SQL: the user's id in the column's own form (UUIDs are 32 hex characters on SQLite).
    user_id = Chunk._meta.get_field("user").target_field.get_db_prep_value(user_id, connection)
    if connection.vendor == "postgresql":
        sql, params = _PG, [query, user_id, limit]
    elif connection.vendor == "sqlite":
        match = sqlite_match(query)
        if not match:
            return []
        sql, params = _SQLITE, [match, user_id, limit]
    else:
        return []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [uuid.UUID(str(row[0])) for row in cursor.fetchall()]
