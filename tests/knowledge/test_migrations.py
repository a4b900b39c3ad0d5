"""The knowledge migrations run backwards and forwards, and the full-text index comes back with them."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection

from knowledge.index import add_document
from knowledge.search import fulltext_ranking
from tests.knowledge import helpers


def fulltext_objects() -> set[str]:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE name LIKE 'knowledge_chunk_fts%' AND type IN ('table', 'trigger')"
            )
        else:
            cursor.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'knowledge_chunk' AND column_name = 'search'"
                " UNION SELECT indexname FROM pg_indexes WHERE indexname = 'knowledge_chunk_search_gin'"
            )
        return {row[0] for row in cursor.fetchall()}


EXPECTED = {
    "sqlite": {
        "knowledge_chunk_fts",
        "knowledge_chunk_fts_key",
        "knowledge_chunk_fts_insert",
        "knowledge_chunk_fts_delete",
        "knowledge_chunk_fts_update",
    },
    "postgresql": {"search", "knowledge_chunk_search_gin"},
}


@pytest.mark.django_db(transaction=True)
def test_the_full_text_migration_reverses_and_reapplies_keeping_existing_chunks_searchable(alice):
    assert EXPECTED[connection.vendor] <= fulltext_objects()
    doc = add_document(alice, "Invoices.txt", helpers.INVOICES.encode())

    call_command("migrate", "knowledge", "0001", verbosity=0)
    assert fulltext_objects() == set()
    call_command("migrate", "knowledge", verbosity=0)
    assert EXPECTED[connection.vendor] <= fulltext_objects()
    # Chunks written before the index existed are indexed when it is made.
    assert fulltext_ranking(alice.id, "Kestrel") == list(doc.chunks.values_list("id", flat=True))


@pytest.mark.django_db(transaction=True)
def test_the_knowledge_tables_can_be_removed_and_made_again():
    call_command("migrate", "knowledge", "zero", verbosity=0)
    assert "knowledge_chunk" not in connection.introspection.table_names()
    call_command("migrate", "knowledge", verbosity=0)
    assert "knowledge_chunk" in connection.introspection.table_names()
    assert EXPECTED[connection.vendor] <= fulltext_objects()
