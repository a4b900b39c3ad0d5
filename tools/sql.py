"""queryDatabase: read-only SQL over views of the signed-in user's own conversations, messages and usage.

The model sends one SELECT (or a ``question`` in words, answered by a ready-made query from
``tools.sql_questions``) and reads back a table. What it may read is decided by the database, not by
looking at the SQL text:

PostgreSQL
    The migration (tools/migrations/0001) creates a bare ``NOLOGIN`` role per database (its name is
    derived from the database name, because roles are cluster-wide) that holds ``USAGE`` on one schema,
    ``sql_tool``, and ``SELECT`` on its three views, and nothing else. Each view is owned by the app's
    own role, marked ``security_barrier``, and keeps only the rows whose owner is the value of the
    ``chimera.user_id`` setting.

    A query runs on a fresh connection (so nothing it does to the session survives it), in one
    transaction that always ends in ROLLBACK: the app sets the time limits, ``search_path``,
    ``chimera.user_id`` and ``TimeZone`` with ``SET LOCAL``, makes the transaction ``READ ONLY``, and
    switches to the reader with ``SET LOCAL ROLE``. The user's text then goes in as
    ``DECLARE … CURSOR FOR <sql>`` over the extended protocol, so the server itself accepts exactly one
    statement and only a query (SELECT, WITH … SELECT, VALUES): no ``SET``, ``RESET ROLE``, ``DO``,
    ``COPY``, DDL or writes, no ``;`` second statement, and a data-modifying ``WITH`` is refused.
    ``FETCH`` takes at most the row cap plus one.

    Why the user id cannot be spoofed, and the role cannot be left: inside a single SELECT the only way
    to change a setting is the function ``set_config``, which PUBLIC may call by default. With it a
    query could rewrite ``chimera.user_id``, and worse, ``set_config('role', 'none', true)`` returns to
    the app's role mid-statement, after which ``query_to_xml('select … from users')`` reads anything.
    So the migration revokes EXECUTE on ``set_config`` from PUBLIC (granting it back to the app's role,
    which Django uses for the time zone). Then nothing the query can say changes the setting or the
    role, read-only cannot be switched off (Postgres refuses once the transaction has a snapshot), and
    ``security_barrier`` stops the planner from running the query's own conditions (a failing cast, a
    division by zero) on other users' rows before the view's filter. We chose this over row-level
    security on the base tables because RLS would need the role to have SELECT on those tables and
    ``security_invoker`` views; here the role sees only the three views. Revoking a pg_catalog
    privilege needs a superuser (or the function's owner): if it could not be done, every query is
    refused with a message saying so (checked on each call, so it fails closed).

SQLite (embedded mode)
    There are no roles, so the only rows present are the user's: each query gets a fresh in-memory
    database holding tables with the same names and columns as the views, filled with this user's rows
    only (copied from the app's database file attached with ``mode=ro``, and detached before the query
    runs; only the tables the query reads are filled). It is then made read-only
    (``PRAGMA query_only``), an authorizer allows only reading and calling functions (no ATTACH, PRAGMA,
    writes, DDL or ``load_extension``; no more attached databases either), sqlite3 refuses a second
    statement, a progress handler enforces the time limit, and value sizes are capped.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any, ClassVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.utils import timezone
from pydantic import BaseModel, Field, field_validator, model_validator

from chat.schemas import ComponentPart
from tools import sql_questions
from tools.base import Tool, ToolContext, ToolError, ToolResult

log = logging.getLogger(__name__)

SCHEMA = "sql_tool"  # the PostgreSQL schema holding the views (schemas are per database)
MAX_SQL_CHARS = 5000
MAX_QUESTION_CHARS = 500


def reader_role(database_name: str) -> str:
    """The read-only role of one database. Role names are shared by every database in a cluster, so the
    name comes from the database's (test databases and deployments side by side never share one)."""
    name = f"{database_name}_sql_reader"
    if len(name.encode()) <= 63:  # PostgreSQL's identifier limit
        return name
    digest = hashlib.sha256(database_name.encode()).hexdigest()[:12]
    return f"{database_name.encode()[:36].decode(errors='ignore')}_{digest}_sql_reader"


# ---- what can be queried ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # uuid | text | timestamp | boolean | integer | decimal
    about: str = ""


VIEWS: dict[str, tuple[Column, ...]] = {
    "my_conversations": (
        Column("id", "uuid"),
        Column("title", "text"),
        Column("created_at", "timestamp"),
        Column("updated_at", "timestamp"),
        Column("is_archived", "boolean"),
    ),
    "my_messages": (
        Column("id", "uuid"),
        Column("conversation_id", "uuid", "my_conversations.id"),
        Column("role", "text", "user | assistant | system | tool"),
        Column("content", "text"),
        Column("status", "text", "streaming | complete | incomplete | error"),
        Column("created_at", "timestamp"),
        Column("model", "text", "the model that wrote an answer"),
        Column("provider", "text"),
        Column("input_tokens", "integer"),
        Column("output_tokens", "integer"),
        Column("total_tokens", "integer"),
    ),
    "my_usage": (
        Column("id", "uuid"),
        Column("conversation_id", "uuid"),
        Column("message_id", "uuid"),
        Column("provider", "text", "groq | google | anthropic | gateway | local"),
        Column("model", "text"),
        Column("tier", "text", "fast | balanced | powerful | reasoning"),
        Column("input_tokens", "integer"),
        Column("output_tokens", "integer"),
        Column("reasoning_tokens", "integer"),
        Column("cached_input_tokens", "integer"),
        Column("total_tokens", "integer", "input + output"),
        Column("cost_usd", "decimal", "US dollars; null when the model had no price"),
        Column("latency_ms", "integer"),
        Column("ttft_ms", "integer", "time to first token"),
        Column("cache_hit", "boolean"),
        Column("status_code", "integer"),
        Column("failed", "boolean"),
        Column("created_at", "timestamp"),
    ),
}
_SQLITE_TYPES = {
    "uuid": "TEXT",
    "text": "TEXT",
    "timestamp": "TEXT",
    "boolean": "INTEGER",
    "integer": "INTEGER",
    "decimal": "REAL",
}


def describe_views() -> str:
    """The views and their columns, in the words the model reads."""
    lines = []
    for view, columns in VIEWS.items():
        cols = ", ".join(f"{c.name} {c.type}" + (f" ({c.about})" if c.about else "") for c in columns)
        lines.append(f"- {view}({cols})")
    return "\n".join(lines)


DESCRIPTION = (
    "Run read-only SQL over the signed-in user's own data, or answer a common question about it. "
    "Send either `sql`: exactly one SELECT (WITH … SELECT and VALUES work too), or `question`: a question "
    "in words such as 'how many conversations', 'cost this month', 'tokens by model', 'latency by "
    "provider', 'messages per day'. Only these views can be read, and each holds only this user's "
    "rows (one row in my_usage per provider call):\n"
    f"{describe_views()}\n"
    "Timestamps are UTC. Results are cut at a row limit (`truncated` says so): aggregate in SQL rather "
    "than fetching many rows. Writes, settings and other tables are refused."
)


# ---- arguments ---------------------------------------------------------------------------------
class QueryArgs(BaseModel):
    """Exactly one of ``sql`` and ``question``."""

    sql: str | None = Field(
        default=None,
        max_length=MAX_SQL_CHARS,
        description="One read-only SQL query over my_conversations, my_messages and my_usage.",
    )
    question: str | None = Field(
        default=None,
        max_length=MAX_QUESTION_CHARS,
        description="Instead of sql: a common question in words, e.g. 'cost this month'.",
    )

    @field_validator("sql", "question")
    @classmethod
    def _plain_text(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # (pydantic already refuses unpaired surrogates; PostgreSQL would refuse NUL less kindly.)
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value.strip() or None

    @model_validator(mode="after")
    def _exactly_one(self) -> QueryArgs:
        if (self.sql is None) == (self.question is None):
            raise ValueError("send exactly one of `sql` or `question`")
        return self


# ---- limits and results ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Limits:
    timeout_ms: int
    max_rows: int
    lock_timeout_ms: int
    idle_timeout_ms: int
    max_cell_chars: int

    @classmethod
    def from_settings(cls) -> Limits:
        def positive(name: str, default: int) -> int:
            return max(1, int(getattr(settings, name, default)))

        return cls(
            timeout_ms=positive("CHIMERA_SQL_TIMEOUT_MS", 3000),
            max_rows=positive("CHIMERA_SQL_MAX_ROWS", 200),
            lock_timeout_ms=positive("CHIMERA_SQL_LOCK_TIMEOUT_MS", 1000),
            idle_timeout_ms=positive("CHIMERA_SQL_IDLE_TIMEOUT_MS", 10_000),
            max_cell_chars=positive("CHIMERA_SQL_MAX_CELL_CHARS", 1000),
        )

    def timeout_text(self) -> str:
        return f"{self.timeout_ms / 1000:g} s"


@dataclass(frozen=True, slots=True)
class Table:
    columns: list[str]
    rows: list[Sequence[Any]]  # at most max_rows, values as the driver gave them
    truncated: bool


ONLY_QUERIES = "queryDatabase runs exactly one read-only query (SELECT, WITH … SELECT or VALUES)."
ONLY_VIEWS = "Only my_conversations, my_messages and my_usage can be read."


def _timed_out(limits: Limits) -> ToolError:
    return ToolError(
        f"The query was stopped after {limits.timeout_text()} (queryDatabase's time limit). "
        "Ask for less: aggregate, add a WHERE, or a LIMIT."
    )


# ---- the tool ----------------------------------------------------------------------------------
class QueryDatabase(Tool):
    name = "queryDatabase"
    description = DESCRIPTION
    Args: ClassVar[type[BaseModel]] = QueryArgs
    timeout_s = 20.0

    @classmethod
    def definition(cls) -> dict[str, Any]:
        definition = super().definition()
        limits = Limits.from_settings()
        if connections["default"].vendor == "postgresql":
            dialect = "PostgreSQL (timestamps are timestamptz, cost_usd is numeric)"
        else:
            dialect = "SQLite (timestamps are ISO-8601 text, booleans 0/1, cost_usd a float)"
        definition["description"] += (
            f"\nSQL dialect: {dialect}. At most {limits.max_rows} rows; queries stop after "
            f"{limits.timeout_text()}."
        )
        return definition

    async def run(self, ctx: ToolContext, args: Any) -> ToolResult:
        try:
            user_id = uuid.UUID(str(ctx.user_id))
        except ValueError:
            raise ToolError("queryDatabase needs a signed-in user.") from None
        title = ""
        if args.sql is not None:
            sql_text = args.sql
        else:
            canned = sql_questions.match(args.question, timezone.now())
            if canned is None:
                raise ToolError(
                    f"There is no ready-made query for {args.question!r}. Send `sql` instead: one "
                    f"SELECT over these views:\n{describe_views()}"
                )
            sql_text, title = canned.sql, canned.title
        limits = Limits.from_settings()
        vendor = connections["default"].vendor
        if vendor == "postgresql":
            table = await sync_to_async(_query_postgres, thread_sensitive=False)(user_id, sql_text, limits)
        elif vendor == "sqlite":
            query = sync_to_async(_query_sqlite, thread_sensitive=False)
            table = await query(_sqlite_file(), user_id, sql_text, limits)
        else:
            raise ToolError(f"queryDatabase works with PostgreSQL and SQLite, not {vendor}.")
        return _result(table, sql_text, title, limits)


def _result(table: Table, sql_text: str, title: str, limits: Limits) -> ToolResult:
    shortened = 0
    rows: list[list[Any]] = []
    for raw in table.rows:
        row = []
        for value in raw:
            cell, cut = json_value(value, limits.max_cell_chars)
            shortened += cut
            row.append(cell)
        rows.append(row)
    output: dict[str, Any] = {
        "columns": table.columns,
        "rows": rows,
        "rowCount": len(rows),
        "truncated": table.truncated,
        "sql": sql_text,
    }
    notes = []
    if title:
        notes.append(f"Answered with the ready-made query '{title}'; `sql` is what ran.")
    if table.truncated:
        notes.append(f"Only the first {limits.max_rows} rows are shown: aggregate or filter for the rest.")
    if shortened:
        notes.append(f"{shortened} long value(s) were cut to {limits.max_cell_chars} characters.")
    if notes:
        output["note"] = " ".join(notes)
    caption = title or (f"{len(rows)} row" + ("" if len(rows) == 1 else "s"))
    if table.truncated:
        caption += f" (first {limits.max_rows})"
    part = ComponentPart(
        component="table", props={"columns": table.columns, "rows": rows, "caption": caption}
    )
    return ToolResult(output=output, parts=(part,))


def json_value(value: Any, max_chars: int) -> tuple[Any, bool]:
    """A database value as JSON (and whether it was cut): Decimal as a string (whole numbers as ints),
    times as ISO 8601 in UTC, UUIDs as strings, bytes as hex."""
    if value is None or isinstance(value, bool | int):
        return value, False
    if isinstance(value, float):
        return (value if math.isfinite(value) else str(value)), False
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent >= 0 and abs(value) <= 2**53:
            return int(value), False
        return str(value), False
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat(timespec="microseconds"), False
    if isinstance(value, date | time_of_day):
        return value.isoformat(), False
    if isinstance(value, timedelta):
        return str(value), False
    if isinstance(value, bytes | bytearray | memoryview):
        value = "\\x" + bytes(value).hex()
    elif isinstance(value, list | tuple):
        items = [json_value(v, max_chars) for v in value]
        return [v for v, _ in items], any(cut for _, cut in items)
    elif isinstance(value, dict):
        pairs = {str(k): json_value(v, max_chars) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(cut for _, cut in pairs.values())
    elif not isinstance(value, str):
        value = str(value)  # UUID, ranges, network addresses, …
    if len(value) > max_chars:
        return value[:max_chars] + "…", True
    return value, False


# ---- PostgreSQL --------------------------------------------------------------------------------
def _query_postgres(user_id: uuid.UUID, sql_text: str, limits: Limits) -> Table:
    import psycopg
    from psycopg import errors
    from psycopg import sql as pgsql

    wrapper = connections["default"]
    params = wrapper.get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)  # plain psycopg: our own loaders, no Django cursor
    params.setdefault("application_name", "chimera-queryDatabase")
    params.setdefault("connect_timeout", 5)
    role = reader_role(wrapper.settings_dict["NAME"])
    try:
        conn = psycopg.connect(**params, autocommit=False)
    except psycopg.OperationalError:
        log.warning("queryDatabase could not connect to the database", exc_info=True)
        raise ToolError("The database cannot be reached right now; try again later.") from None
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT r.oid IS NOT NULL,"
                " COALESCE(r.rolsuper OR r.rolbypassrls OR r.rolcanlogin"
                "  OR EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m WHERE m.member = r.oid), false),"
                " COALESCE(pg_catalog.has_function_privilege("
                "  r.oid, 'pg_catalog.set_config(text,text,boolean)', 'EXECUTE'), false)"
                " FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_roles r ON r.rolname = %s",
                [role],
            )
            exists, privileged, can_set = cur.fetchone() or (False, False, False)
            if not exists:
                raise ToolError("queryDatabase is not set up on this database yet: run the migrations.")
            if privileged or can_set:
                log.error(
                    "queryDatabase is switched off: its role %s %s. A superuser must run, in this database: "
                    "REVOKE EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) FROM PUBLIC; "
                    "GRANT EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) TO <the app's role>;",
                    role,
                    "may call set_config"
                    if can_set
                    else "has rights beyond its views (login, superuser, roles)",
                )
                raise ToolError(
                    "queryDatabase is switched off on this database: its read-only role is not locked down "
                    "yet. An administrator must finish its setup (the server log says how)."
                )
            cur.execute(
                pgsql.SQL(
                    "SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {};"
                    " SET LOCAL idle_in_transaction_session_timeout = {}; SET LOCAL TimeZone = 'UTC';"
                    " SET LOCAL search_path = {}; SET LOCAL chimera.user_id = {};"
                    " SET TRANSACTION READ ONLY; SET LOCAL ROLE {}"
                ).format(
                    pgsql.Literal(limits.timeout_ms),
                    pgsql.Literal(limits.lock_timeout_ms),
                    pgsql.Literal(limits.idle_timeout_ms),
                    pgsql.Identifier(SCHEMA),
                    pgsql.Literal(str(user_id)),
                    pgsql.Identifier(role),
                )
            )
        # A named (server-side) cursor: psycopg sends `DECLARE "chimera_query" NO SCROLL CURSOR FOR <sql>`
        # over the extended protocol, so the server takes one statement, and only a query.
        with conn.cursor(name="chimera_query", scrollable=False) as cur:
            cur.execute(sql_text)
            rows = cur.fetchmany(limits.max_rows + 1)
            columns = [d.name for d in cur.description or ()]
        return Table(columns, rows[: limits.max_rows], len(rows) > limits.max_rows)
    except errors.QueryCanceled:
        raise _timed_out(limits) from None
    except psycopg.Error as exc:
        raise ToolError(_postgres_message(exc)) from None
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.rollback()  # always: whatever the query did in this transaction is undone
        conn.close()


def _postgres_message(exc: Any) -> str:
    diag = getattr(exc, "diag", None)
    primary = (getattr(diag, "message_primary", None) or str(exc).strip().splitlines()[0]).rstrip(".")
    state = getattr(exc, "sqlstate", None) or ""
    hint = ""
    if state == "42601" or "multiple commands" in primary:  # syntax error: also DO, SET, INSERT, …
        hint = f" {ONLY_QUERIES}"
    elif state in ("42501", "42P01", "3F000", "42883"):  # privilege, table, schema, function
        hint = f" {ONLY_VIEWS}"
    elif state == "25006" or "data-modifying" in primary:
        hint = " queryDatabase is read-only."
    elif state == "55P03":
        hint = " The data is locked right now; try again shortly."
    return f"The database refused the query: {primary}.{hint}"


# ---- SQLite ------------------------------------------------------------------------------------
# The extract is copied inside SQLite (10,000 messages take milliseconds, where the ORM took seconds),
# from the app's database file attached read-only, and detached before the query is compiled. The
# expressions read Django's SQLite storage: UUIDs as 32 hex digits, datetimes as naive UTC text
# 'YYYY-MM-DD HH:MM:SS[.ffffff]', JSON as text; they give what PostgreSQL gives.
def _uuid(column: str) -> str:
    parts = " || '-' || ".join(f"substr({column}, {start}, {length})" for start, length in _UUID_PARTS)
    return f"lower({parts})"  # NULL stays NULL


_UUID_PARTS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


def _utc(column: str) -> str:
    """'2025-06-01 12:00:00[.123456]' -> '2025-06-01T12:00:00.123456+00:00' (tools.sql_questions's format)."""
    return (
        f"CASE WHEN {column} IS NOT NULL THEN replace({column}, ' ', 'T') || "
        f"CASE WHEN instr({column}, '.') THEN '' ELSE '.000000' END || '+00:00' END"
    )


def _metadata_number(key: str) -> str:
    return (
        f"CASE WHEN json_type(m.metadata, '$.{key}') IN ('integer', 'real') "
        f"THEN json_extract(m.metadata, '$.{key}') END"
    )


_SQLITE_EXTRACT = {
    "my_conversations": f"""
        SELECT {_uuid("c.id")}, c.title, {_utc("c.created_at")}, {_utc("c.updated_at")}, c.is_archived
        FROM source.conversations AS c
        WHERE c.user_id = :user""",
    "my_messages": f"""
        SELECT {_uuid("m.id")}, {_uuid("m.conversation_id")}, m.role, m.content, m.status, {_utc("m.created_at")},
               json_extract(m.metadata, '$.modelUsed'), json_extract(m.metadata, '$.provider'),
               {_metadata_number("inputTokens")}, {_metadata_number("outputTokens")},
               {_metadata_number("tokenCount")}
        FROM source.messages AS m JOIN source.conversations AS c ON c.id = m.conversation_id
        WHERE c.user_id = :user""",
    "my_usage": f"""
        SELECT {_uuid("u.id")}, {_uuid("u.conversation_id")}, {_uuid("u.message_id")}, u.provider, u.model,
               u.tier, u.input_tokens, u.output_tokens, u.reasoning_tokens, u.cached_input_tokens,
               u.input_tokens + u.output_tokens, CAST(u.cost_usd AS REAL), u.latency_ms, u.ttft_ms,
               u.cache_hit, u.status_code, u.error <> '', {_utc("u.created_at")}
        FROM source.usage_metrics AS u
        WHERE u.user_id = :user""",
}


def _sqlite_file() -> str:
    name = str(connections["default"].settings_dict["NAME"])
    if name == ":memory:" or "mode=memory" in name:
        raise ToolError("queryDatabase needs the SQLite database in a file, not in memory.")
    return name


def _create_tables(conn: sqlite3.Connection) -> None:
    for view, columns in VIEWS.items():
        spec = ", ".join(f"{c.name} {_SQLITE_TYPES[c.type]}" for c in columns)
        conn.execute(f"CREATE TABLE main.{view} ({spec})")


def _tables_read(conn: sqlite3.Connection, sql_text: str) -> set[str]:
    """The tables ``sql_text`` reads, from compiling it (EXPLAIN) under the query's own authorizer.

    Only those are filled, so a question about usage does not copy every message. A query that does
    not compile reads nothing; running it later gives the person the same error."""
    read: set[str] = set()

    def record(action: int, arg1: str | None, *rest: str | None) -> int:
        if action == sqlite3.SQLITE_READ and arg1 in VIEWS:
            read.add(arg1)
        return _authorize(action, arg1, *rest)

    conn.set_authorizer(record)
    try:
        conn.execute(f"EXPLAIN {sql_text}")
    except (sqlite3.Error, sqlite3.Warning):
        return set()
    finally:
        conn.set_authorizer(None)
    return read


def _load_extract(conn: sqlite3.Connection, database: str, user_id: uuid.UUID, tables: set[str]) -> None:
    """Fill ``tables`` with this user's rows only."""
    conn.execute("ATTACH DATABASE ? AS source", [f"file:{urllib.parse.quote(database)}?mode=ro"])
    try:
        for view in VIEWS:
            if view in tables:
                conn.execute(f"INSERT INTO main.{view} {_SQLITE_EXTRACT[view]}", {"user": user_id.hex})
        conn.commit()  # one read transaction on the source: the tables agree with each other
    except sqlite3.Error:
        conn.rollback()
        raise
    finally:
        conn.execute("DETACH DATABASE source")


_SQLITE_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE}
_SQLITE_LIMITS = (
    (sqlite3.SQLITE_LIMIT_ATTACHED, 0),
    (sqlite3.SQLITE_LIMIT_LENGTH, 10_000_000),  # a value (string, blob) of at most 10 MB
    (sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_CHARS * 4),
)


def _authorize(
    action: int, arg1: str | None, arg2: str | None, db_name: str | None, source: str | None
) -> int:
    """Reading and calling functions only: no ATTACH, PRAGMA, writes, DDL or load_extension."""
    if action in _SQLITE_ALLOWED:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() != "load_extension":
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _query_sqlite(database: str, user_id: uuid.UUID, sql_text: str, limits: Limits) -> Table:
    conn = sqlite3.connect("file::memory:", uri=True, timeout=limits.lock_timeout_ms / 1000)
    try:
        _create_tables(conn)
        tables = _tables_read(conn, sql_text)
        copying = _deadline(conn, limits.timeout_ms / 1000)
        try:
            _load_extract(conn, database, user_id, tables)
        except sqlite3.Error:
            if copying():
                raise ToolError(
                    f"There is too much data to copy for this query within {limits.timeout_text()} in "
                    "embedded (SQLite) mode: read fewer views, or ask about a shorter period."
                ) from None
            log.warning("queryDatabase could not read the database file", exc_info=True)
            raise ToolError("The database cannot be read right now; try again later.") from None
        conn.execute("PRAGMA query_only = ON")
        for limit, value in _SQLITE_LIMITS:
            conn.setlimit(limit, value)
        conn.set_authorizer(_authorize)
        stopped = _deadline(conn, limits.timeout_ms / 1000)
        try:
            cur = conn.execute(sql_text)
            if cur.description is None:
                raise ToolError(f"The statement returned no rows. {ONLY_QUERIES}")
            rows = cur.fetchmany(limits.max_rows + 1)
        except sqlite3.OperationalError as exc:
            if stopped():
                raise _timed_out(limits) from None
            raise ToolError(_sqlite_message(exc)) from None
        except (sqlite3.Error, sqlite3.Warning) as exc:
            raise ToolError(_sqlite_message(exc)) from None
        columns_out = [d[0] for d in cur.description]
        return Table(columns_out, rows[: limits.max_rows], len(rows) > limits.max_rows)
    finally:
        conn.close()


def _deadline(conn: sqlite3.Connection, seconds: float) -> Callable[[], bool]:
    """Interrupt the statement once ``seconds`` have passed; the returned function says if it did."""
    ends = time.monotonic() + seconds
    fired = [False]

    def check() -> int:
        if time.monotonic() > ends:
            fired[0] = True
            return 1
        return 0

    conn.set_progress_handler(check, 1000)
    return lambda: fired[0]


def _sqlite_message(exc: Exception) -> str:
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    hint = ""
    if "not authorized" in text:
        hint = f" {ONLY_QUERIES} {ONLY_VIEWS}"
    elif "no such table" in text or "unknown database" in text:
        hint = f" {ONLY_VIEWS}"
    elif "one statement" in text or "syntax error" in text or "incomplete input" in text:
        hint = f" {ONLY_QUERIES}"
    elif "readonly" in text or "read-only" in text:
        hint = " queryDatabase is read-only."
    return f"The database refused the query: {text}.{hint}"
