"""The full-text index of chunks, which the model does not describe (each database has its own).

PostgreSQL: a ``search`` tsvector column that the database itself keeps up to date (a stored
generated column, English stemming) and a GIN index on it.

SQLite: an FTS5 table (Porter stemming) and a key table from chunk id to FTS row, kept in step by
triggers, so every write path (including ORM cascades and flushes) updates it. A Django migration
that later alters ``knowledge_chunk`` on SQLite remakes the table and so drops these triggers: such
a migration must run ``sqlite_install`` again (tests/knowledge/test_migrations.py would notice).

Both directions are written out here rather than imported, so this migration stays as it was.
"""

from django.db import migrations

PG_FORWARD = [
    "ALTER TABLE knowledge_chunk ADD COLUMN search tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED",
    "CREATE INDEX knowledge_chunk_search_gin ON knowledge_chunk USING gin (search)",
]
PG_BACKWARD = [
    "DROP INDEX IF EXISTS knowledge_chunk_search_gin",
    "ALTER TABLE knowledge_chunk DROP COLUMN IF EXISTS search",
]

SQLITE_FORWARD = [
    "CREATE VIRTUAL TABLE knowledge_chunk_fts USING fts5(text, tokenize = 'porter unicode61 remove_diacritics 2')",
    # Chunk ids are UUIDs; FTS5 rows are keyed by integers. Our own key table (not the chunk table's
    # implicit rowid, which VACUUM may renumber) ties the two.
    "CREATE TABLE knowledge_chunk_fts_key ("
    " chunk_id char(32) NOT NULL PRIMARY KEY, fts_rowid integer NOT NULL UNIQUE)",
    "INSERT INTO knowledge_chunk_fts_key (chunk_id, fts_rowid)"
    " SELECT id, row_number() OVER (ORDER BY created_at) FROM knowledge_chunk",
    "INSERT INTO knowledge_chunk_fts (rowid, text)"
    " SELECT k.fts_rowid, c.text FROM knowledge_chunk_fts_key k JOIN knowledge_chunk c ON c.id = k.chunk_id",
    """CREATE TRIGGER knowledge_chunk_fts_insert AFTER INSERT ON knowledge_chunk BEGIN
        INSERT INTO knowledge_chunk_fts_key (chunk_id, fts_rowid)
            VALUES (new.id, (SELECT coalesce(max(fts_rowid), 0) + 1 FROM knowledge_chunk_fts_key));
        INSERT INTO knowledge_chunk_fts (rowid, text)
            VALUES ((SELECT fts_rowid FROM knowledge_chunk_fts_key WHERE chunk_id = new.id), new.text);
    END""",
    """CREATE TRIGGER knowledge_chunk_fts_delete AFTER DELETE ON knowledge_chunk BEGIN
        DELETE FROM knowledge_chunk_fts
            WHERE rowid = (SELECT fts_rowid FROM knowledge_chunk_fts_key WHERE chunk_id = old.id);
        DELETE FROM knowledge_chunk_fts_key WHERE chunk_id = old.id;
    END""",
    """CREATE TRIGGER knowledge_chunk_fts_update AFTER UPDATE OF text ON knowledge_chunk BEGIN
        UPDATE knowledge_chunk_fts SET text = new.text
            WHERE rowid = (SELECT fts_rowid FROM knowledge_chunk_fts_key WHERE chunk_id = old.id);
    END""",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS knowledge_chunk_fts_update",
    "DROP TRIGGER IF EXISTS knowledge_chunk_fts_delete",
    "DROP TRIGGER IF EXISTS knowledge_chunk_fts_insert",
    "DROP TABLE IF EXISTS knowledge_chunk_fts_key",
    "DROP TABLE IF EXISTS knowledge_chunk_fts",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        # Other databases get no full-text index: search then ranks by embeddings alone.
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, ()):
            schema_editor.execute(statement)

    return run


def sqlite_install(apps, schema_editor):
    """For a later migration that remakes knowledge_chunk on SQLite (see the module docstring)."""
    _run({"sqlite": SQLITE_BACKWARD + SQLITE_FORWARD})(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": PG_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": PG_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        ),
    ]
