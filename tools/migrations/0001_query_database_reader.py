"""queryDatabase on PostgreSQL: the reader role, its schema of views, and set_config locked away.

See tools/sql.py for the design. Idempotent (a role left behind by a dropped test database is reused)
and reversible (the role is dropped). Nothing happens on SQLite, which gets per-query extracts instead.
"""

import logging

from django.db import migrations

log = logging.getLogger(__name__)

# Views are owned by the role running this migration (the app's), so they read the base tables with its
# rights; security_barrier keeps a query's own conditions from running before the user filter.
USER = "NULLIF(pg_catalog.current_setting('chimera.user_id', true), '')::uuid"
VIEWS = {
    "my_conversations": f"""
        SELECT c.id, c.title, c.created_at, c.updated_at, c.is_archived
        FROM conversations AS c
        WHERE c.user_id = {USER}""",
    "my_messages": f"""
        SELECT m.id, m.conversation_id, m.role, m.content, m.status, m.created_at,
               m.metadata ->> 'modelUsed' AS model,
               m.metadata ->> 'provider' AS provider,
               CASE WHEN jsonb_typeof(m.metadata -> 'inputTokens') = 'number'
                    THEN (m.metadata ->> 'inputTokens')::numeric END AS input_tokens,
               CASE WHEN jsonb_typeof(m.metadata -> 'outputTokens') = 'number'
                    THEN (m.metadata ->> 'outputTokens')::numeric END AS output_tokens,
               CASE WHEN jsonb_typeof(m.metadata -> 'tokenCount') = 'number'
                    THEN (m.metadata ->> 'tokenCount')::numeric END AS total_tokens
        FROM messages AS m JOIN conversations AS c ON c.id = m.conversation_id
        WHERE c.user_id = {USER}""",
    "my_usage": f"""
        SELECT u.id, u.conversation_id, u.message_id, u.provider, u.model, u.tier,
               u.input_tokens, u.output_tokens, u.reasoning_tokens, u.cached_input_tokens,
               u.input_tokens::bigint + u.output_tokens AS total_tokens,
               u.cost_usd, u.latency_ms, u.ttft_ms, u.cache_hit, u.status_code,
               u.error <> '' AS failed, u.created_at
        FROM usage_metrics AS u
        WHERE u.user_id = {USER}""",
}
SET_CONFIG = "pg_catalog.set_config(text, text, boolean)"


def _names(connection):
    from psycopg import sql

    from tools.sql import SCHEMA, reader_role

    role = reader_role(connection.settings_dict["NAME"])

    def quote(name):
        return sql.Identifier(name).as_string(connection.connection)

    return role, quote(role), quote(SCHEMA), quote


def create_reader(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    role, q_role, q_schema, quote = _names(connection)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone() is None:
            cursor.execute(f"CREATE ROLE {q_role} NOLOGIN NOINHERIT")
        else:
            cursor.execute(f"ALTER ROLE {q_role} NOLOGIN NOINHERIT")
        # The app's role must be a member to SET ROLE to it (a superuser need not, but it does no harm).
        cursor.execute(f"GRANT {q_role} TO CURRENT_USER")
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {q_schema}")
        cursor.execute(f"REVOKE ALL ON SCHEMA {q_schema} FROM PUBLIC")
        cursor.execute(f"GRANT USAGE ON SCHEMA {q_schema} TO {q_role}")
        for name, body in VIEWS.items():
            view = f"{q_schema}.{quote(name)}"
            cursor.execute(f"CREATE OR REPLACE VIEW {view} WITH (security_barrier = true) AS {body}")
            cursor.execute(f"REVOKE ALL ON {view} FROM PUBLIC")
            cursor.execute(f"GRANT SELECT ON {view} TO {q_role}")
        # Without this any query could call set_config('role', 'none', true) and leave the role.
        cursor.execute(f"REVOKE EXECUTE ON FUNCTION {SET_CONFIG} FROM PUBLIC")
        cursor.execute(f"GRANT EXECUTE ON FUNCTION {SET_CONFIG} TO CURRENT_USER")  # Django's time zone
        cursor.execute(
            "SELECT pg_catalog.has_function_privilege(%s, %s, 'EXECUTE'), current_user",
            [role, SET_CONFIG.split(".", 1)[1]],
        )
        can_set, app_role = cursor.fetchone()
        if can_set:
            log.warning(
                "queryDatabase stays switched off until a superuser runs, in this database: REVOKE EXECUTE "
                "ON FUNCTION %s FROM PUBLIC; GRANT EXECUTE ON FUNCTION %s TO %s;",
                SET_CONFIG,
                SET_CONFIG,
                quote(app_role),
            )


def drop_reader(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    role, q_role, q_schema, _ = _names(connection)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {q_schema} CASCADE")
        cursor.execute(f"GRANT EXECUTE ON FUNCTION {SET_CONFIG} TO PUBLIC")  # PostgreSQL's default
        cursor.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone() is not None:
            cursor.execute(f"DROP OWNED BY {q_role}")  # its grants in this database
            cursor.execute(f"DROP ROLE {q_role}")


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0002_initial"),
        ("usage", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_reader, drop_reader, elidable=False)]
