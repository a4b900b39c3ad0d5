"""queryDatabase: alice reads her own conversations, messages and usage, and nothing of bob's, by any route.

Every test runs on whichever database the run uses (SQLite by default, PostgreSQL in CI); where the two
enforce a rule differently (a role and views there, a per-query extract here) the test says what each
must do. Calls go through ``tools.registry.invoke``, as the tool loop makes them.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from chat.models import Conversation, Message
from chat.schemas import ComponentPart
from tests.api.helpers import wait_for
from tools import registry
from tools.base import ToolContext
from tools.sql import SCHEMA, VIEWS, reader_role
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "BOBSECRET-41d7"  # in every row of bob's; must never reach alice
ALICE_MODELS = {("groq", "llama-3.3-70b-versatile"), ("anthropic", "claude-sonnet-4")}


@dataclass
class World:
    alice: object
    bob: object
    alice_conversations: list[Conversation]
    bob_conversation: Conversation
    bob_message_ids: list[str]
    bob_usage_ids: list[str]

    def bob_traces(self) -> list[str]:
        """Strings that appear only in bob's data."""
        return [
            SECRET,
            str(self.bob.pk),
            str(self.bob_conversation.pk),
            *self.bob_message_ids,
            *self.bob_usage_ids,
        ]


def _meta(model: str, provider: str, inp: int, out: int) -> dict:
    return {
        "timestamp": "2025-01-01T00:00:00Z",
        "modelUsed": model,
        "provider": provider,
        "inputTokens": inp,
        "outputTokens": out,
        "tokenCount": inp + out,
        "traceId": "t",
        "sessionId": "s",
    }


@pytest.fixture
def world(alice, bob) -> World:
    now = timezone.now()
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    trip = Conversation.objects.create(user=alice, title="Trip to Lisbon")
    soup = Conversation.objects.create(user=alice, title="Soups", is_archived=True)
    Message.objects.create(conversation=trip, role="user", content="Where should I stay in Lisbon?")
    Message.objects.create(
        conversation=trip,
        role="assistant",
        content="Alfama is lovely.",
        metadata=_meta("llama-3.3-70b-versatile", "groq", 12, 30),
    )
    Message.objects.create(conversation=soup, role="user", content="A green soup, please.")
    Message.objects.create(
        conversation=soup,
        role="assistant",
        content="Try caldo verde.",
        metadata=_meta("claude-sonnet-4", "anthropic", 8, 20),
    )
    usage = dict(input_tokens=12, output_tokens=30, latency_ms=400, ttft_ms=100)
    UsageMetric.objects.create(
        user=alice,
        conversation_id=trip.pk,
        provider="groq",
        model="llama-3.3-70b-versatile",
        cost_usd=Decimal("0.001"),
        **usage,
    )
    UsageMetric.objects.create(
        user=alice,
        provider="anthropic",
        model="claude-sonnet-4",
        input_tokens=8,
        output_tokens=20,
        cost_usd=Decimal("0.002"),
        latency_ms=900,
        ttft_ms=300,
        cache_hit=True,
    )
    old = UsageMetric.objects.create(
        user=alice,
        provider="groq",
        model="llama-3.3-70b-versatile",
        input_tokens=100,
        output_tokens=200,
        cost_usd=Decimal("0.5"),
        latency_ms=200,
        ttft_ms=50,
    )
    UsageMetric.objects.filter(pk=old.pk).update(created_at=month_start - timedelta(hours=1))  # last month

    plans = Conversation.objects.create(user=bob, title=f"{SECRET} plans")
    bob_messages = [
        Message.objects.create(conversation=plans, role="user", content=f"{SECRET} question"),
        Message.objects.create(
            conversation=plans,
            role="assistant",
            content=f"{SECRET} answer",
            metadata=_meta(f"{SECRET}-model", "groq", 5, 5),
        ),
    ]
    bob_usage = UsageMetric.objects.create(
        user=bob,
        provider="groq",
        model=f"{SECRET}-model",
        input_tokens=5,
        output_tokens=5,
        cost_usd=Decimal("9.99"),
        latency_ms=50,
        error=f"{SECRET} failure",
    )
    return World(
        alice=alice,
        bob=bob,
        alice_conversations=[trip, soup],
        bob_conversation=plans,
        bob_message_ids=[str(m.pk) for m in bob_messages],
        bob_usage_ids=[str(bob_usage.pk)],
    )


def ask(user, tier: str = "free", **args) -> registry.Outcome:
    ctx = ToolContext(user_id=user.pk, user_tier=tier)
    return async_to_sync(registry.invoke)("queryDatabase", args, ctx)


def seen(outcome: registry.Outcome) -> str:
    """Everything the model and the person get back, except the SQL echoed from the request."""
    if not outcome.ok:
        return outcome.error
    assert outcome.result is not None
    output = {k: v for k, v in outcome.result.output.items() if k != "sql"}
    return json.dumps([output, [p.model_dump(mode="json") for p in outcome.result.parts]])


def assert_nothing_of_bob(outcome: registry.Outcome, world: World, sql: str = "") -> None:
    text = seen(outcome)
    for trace in world.bob_traces():
        if trace not in sql:  # an error may quote the query back: that is alice's own text
            assert trace not in text, f"bob's {trace!r} reached alice: {text[:500]}"


def rows(outcome: registry.Outcome) -> list[list]:
    assert outcome.ok, outcome.error
    assert outcome.result is not None
    return outcome.result.output["rows"]


def as_dicts(outcome: registry.Outcome) -> list[dict]:
    assert outcome.result is not None
    columns = outcome.result.output["columns"]
    return [dict(zip(columns, row, strict=True)) for row in rows(outcome)]


def postgres() -> bool:
    return connection.vendor == "postgresql"


# ---- what alice sees ----------------------------------------------------------------------------
@pytest.mark.parametrize("view", list(VIEWS))
def test_each_view_has_the_described_columns_and_only_the_callers_rows(world, view):
    mine = ask(world.alice, sql=f"SELECT * FROM {view}")
    his = ask(world.bob, sql=f"SELECT * FROM {view}")

    assert mine.result.output["columns"] == [c.name for c in VIEWS[view]]
    expected = {"my_conversations": (2, 1), "my_messages": (4, 2), "my_usage": (3, 1)}[view]
    assert (len(rows(mine)), len(rows(his))) == expected
    assert_nothing_of_bob(mine, world)
    assert SECRET in seen(his)  # the same query as bob does reach his rows


def test_messages_carry_the_model_provider_and_tokens_from_their_metadata(world):
    outcome = ask(
        world.alice,
        sql="SELECT model, provider, input_tokens, output_tokens, total_tokens FROM my_messages "
        "WHERE role = 'assistant' ORDER BY model",
    )
    assert rows(outcome) == [
        ["claude-sonnet-4", "anthropic", 8, 20, 28],
        ["llama-3.3-70b-versatile", "groq", 12, 30, 42],
    ]


def test_the_views_join_like_tables(world):
    outcome = ask(
        world.alice,
        sql="SELECT c.title, count(DISTINCT m.id) AS messages, count(DISTINCT u.id) AS calls "
        "FROM my_conversations c JOIN my_messages m ON m.conversation_id = c.id "
        "LEFT JOIN my_usage u ON u.conversation_id = c.id GROUP BY c.title ORDER BY c.title",
    )
    assert rows(outcome) == [["Soups", 2, 0], ["Trip to Lisbon", 2, 1]]


def test_values_come_back_as_json_ids_as_strings_times_in_utc_and_money_exactly(world):
    outcome = ask(
        world.alice, sql="SELECT id, created_at, cost_usd, cache_hit FROM my_usage ORDER BY created_at"
    )
    json.dumps(outcome.result.output)  # JSON-able as it stands
    ids = {str(u) for u in UsageMetric.objects.filter(user=world.alice).values_list("id", flat=True)}
    assert {r[0] for r in rows(outcome)} == ids
    assert all(r[1].endswith("+00:00") for r in rows(outcome))
    month_start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert rows(outcome)[0][1] == (month_start - timedelta(hours=1)).isoformat(timespec="microseconds")
    assert [Decimal(str(r[2])) for r in rows(outcome)] == [Decimal("0.5"), Decimal("0.001"), Decimal("0.002")]
    assert [bool(r[3]) for r in rows(outcome)] == [False, False, True]

    binary = "SELECT decode('00ff', 'hex') AS b" if postgres() else "SELECT x'00ff' AS b"
    assert rows(ask(world.alice, sql=binary)) == [["\\x00ff"]]


def test_the_answer_is_shown_as_a_table_part(world):
    outcome = ask(world.alice, sql="SELECT title FROM my_conversations ORDER BY title")
    [part] = outcome.result.parts
    assert isinstance(part, ComponentPart) and part.component == "table"
    assert part.props["columns"] == ["title"]
    assert part.props["rows"] == [["Soups"], ["Trip to Lisbon"]]
    assert part.props["caption"] == "2 rows"
    assert outcome.result.output["rowCount"] == 2 and outcome.result.output["truncated"] is False


def test_alice_and_bob_asking_at_once_each_get_only_their_own(world):
    async def together():
        calls = [
            registry.invoke(
                "queryDatabase", {"sql": "SELECT title FROM my_conversations"}, ToolContext(user.pk, "pro")
            )
            for user in (world.alice, world.bob) * 6
        ]
        return await asyncio.gather(*calls)

    outcomes = async_to_sync(together)()
    for i, outcome in enumerate(outcomes):
        titles = {r[0] for r in rows(outcome)}
        if i % 2 == 0:
            assert titles == {"Trip to Lisbon", "Soups"}
        else:
            assert titles == {f"{SECRET} plans"}


# ---- every route to bob's rows -------------------------------------------------------------------
# (id, SQL with {bob}, {bob_conversation}, {bob_usage} filled in, what must happen)
#   "error": refused;  "empty": runs and returns no rows;  "alice": runs, with alice's rows;
#   "no-bob": may run or fail (the dialects differ), and nothing of bob's comes back either way
ATTACKS = [
    # the base tables and other tables, by name
    ("base-conversations", "SELECT * FROM conversations", "error"),
    ("base-messages", "SELECT * FROM messages", "error"),
    ("base-usage", "SELECT * FROM usage_metrics", "error"),
    ("base-qualified", "SELECT * FROM public.messages", "error"),
    ("users", "SELECT * FROM users", "error"),
    ("users-qualified", "SELECT username, password FROM public.users", "error"),
    ("api-keys", "SELECT * FROM api_keys", "error"),
    ("runtime-flags", "SELECT * FROM runtime_flags", "error"),
    ("sessions", "SELECT * FROM django_session", "error"),
    ("join-base-table", "SELECT m.* FROM my_messages m JOIN messages x ON x.id = m.id", "error"),
    # the views, asked for bob's rows
    (
        "view-bob-conversation",
        "SELECT * FROM my_messages WHERE conversation_id = '{bob_conversation}'",
        "empty",
    ),
    ("view-bob-usage-id", "SELECT * FROM my_usage WHERE id = '{bob_usage}'", "empty"),
    ("view-user-id-column", "SELECT * FROM my_conversations WHERE user_id = '{bob}'", "error"),
    ("view-or-true", "SELECT * FROM my_conversations WHERE id = '{bob_conversation}' OR 1 = 1", "alice"),
    ("view-qualified", "SELECT count(*) AS n FROM sql_tool.my_messages", "alice" if postgres() else "error"),
    # the user-id setting, spoofed
    ("set-config", "SELECT set_config('chimera.user_id', '{bob}', true), * FROM my_messages", "error"),
    (
        "set-config-in-where",
        "SELECT * FROM my_messages WHERE set_config('chimera.user_id', '{bob}', true) IS NOT NULL",
        "error",
    ),
    (
        "set-config-in-cte",
        "WITH s AS (SELECT set_config('chimera.user_id', '{bob}', false)) SELECT * FROM s, my_usage",
        "error",
    ),
    ("set-statement", "SET chimera.user_id = '{bob}'", "error"),
    # leaving the role
    ("reset-role", "RESET ROLE", "error"),
    ("set-role", "SET ROLE postgres", "error"),
    ("session-authorization", "SET SESSION AUTHORIZATION postgres", "error"),
    (
        "set-config-role-then-read",
        "SELECT set_config('role', 'none', true), query_to_xml('SELECT * FROM messages', true, false, '')",
        "error",
    ),
    (
        "set-config-session-authorization",
        "SELECT set_config('session_authorization', 'postgres', true)",
        "error",
    ),
    ("do-block", "DO $$ BEGIN RESET ROLE; END $$", "error"),
    # several statements, comments, semicolons
    ("second-statement", "SELECT 1; SELECT * FROM messages", "error"),
    ("reset-then-read", "SELECT 1; RESET ROLE; SELECT * FROM messages", "error"),
    ("comment-then-statement", "SELECT 1 /* ; */ ; DROP TABLE users", "error"),
    ("commented-out-tail", "SELECT title FROM my_conversations -- ; SELECT * FROM messages", "alice"),
    (
        "quote-in-comment",
        "SELECT * FROM my_conversations WHERE 1 = 1 /* ' */ OR id = '{bob_conversation}'",
        "alice",
    ),
    ("comment-before-reset", "/* SELECT */ RESET ROLE", "error"),
    # functions that read around the views
    ("query-to-xml", "SELECT query_to_xml('SELECT * FROM messages', true, false, '')", "error"),
    ("table-to-xml", "SELECT table_to_xml('public.messages', true, false, '')", "error"),
    ("read-file", "SELECT pg_read_file('/etc/passwd')", "error"),
    ("read-binary-file", "SELECT * FROM pg_read_binary_file('/etc/passwd')", "error"),
    ("ls-dir", "SELECT pg_ls_dir('.')", "error"),
    ("superuser-setting", "SELECT current_setting('data_directory')", "error"),
    ("dblink", "SELECT * FROM dblink('dbname=postgres', 'SELECT 1') AS t(x int)", "error"),
    ("lo-import", "SELECT lo_import('/etc/passwd')", "error"),
    ("copy", "COPY messages TO STDOUT", "error"),
    ("attach", "ATTACH DATABASE ':memory:' AS other", "error"),
    ("load-extension", "SELECT load_extension('/tmp/x')", "error"),
    ("pragma", "PRAGMA query_only = OFF", "error"),
    # the planner: a condition that fails (or divides by zero) on bob's rows would tell alice they exist
    (
        "error-oracle",
        "SELECT count(*) AS n FROM my_messages WHERE 1 / (CASE WHEN content LIKE '%' || 'BOB' || 'SECRET' || '%' "
        "THEN 0 ELSE 1 END) = 1",
        "alice",
    ),
    ("cast-error-message", "SELECT * FROM my_messages WHERE CAST(content AS integer) = 1", "no-bob"),
    # catalogs (metadata only; the statistics and other sessions have their own test below)
    ("information-schema", "SELECT table_schema, table_name FROM information_schema.tables", "no-bob"),
    ("pg-class", "SELECT relname FROM pg_class", "no-bob"),
]


def test_no_query_reaches_bobs_rows(world, subtests):
    for name, template, expect in ATTACKS:
        sql = template.format(
            bob=world.bob.pk, bob_conversation=world.bob_conversation.pk, bob_usage=world.bob_usage_ids[0]
        )
        with subtests.test(msg=name):
            outcome = ask(world.alice, sql=sql)

            assert_nothing_of_bob(outcome, world, sql)
            assert "Traceback" not in seen(outcome)
            if expect == "error":
                assert not outcome.ok
                assert outcome.error.startswith("The database refused the query: "), outcome.error
            elif expect == "empty":
                assert rows(outcome) == []
            elif expect == "alice":
                columns = outcome.result.output["columns"]
                if "n" in columns:
                    assert rows(outcome) == [[4]]  # all four of alice's messages, no error from bob's
                else:
                    assert {r["title"] for r in as_dicts(outcome)} == {"Trip to Lisbon", "Soups"}


def test_the_reader_can_read_the_three_views_and_nothing_else(world):
    if not postgres():
        outcome = ask(world.alice, sql="SELECT type, name FROM sqlite_schema ORDER BY name")
        assert rows(outcome) == [["table", view] for view in sorted(VIEWS)]
        return
    role = reader_role(connection.settings_dict["NAME"])
    with connection.cursor() as cur:
        cur.execute(
            "SELECT n.nspname, c.relname,"
            " has_table_privilege(%s, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'"
            " AND c.relkind IN ('r', 'v', 'm', 'p', 'f', 'S')"
            " AND has_table_privilege(%s, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')",
            [role, role],
        )
        readable = sorted(cur.fetchall())
        cur.execute(
            "SELECT r.rolcanlogin, r.rolsuper, r.rolbypassrls, r.rolinherit,"
            " (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid),"
            " has_function_privilege(r.oid, 'pg_catalog.set_config(text,text,boolean)', 'EXECUTE'),"
            " has_schema_privilege(r.oid, 'public', 'CREATE'), has_schema_privilege(r.oid, %s, 'CREATE'),"
            " has_database_privilege(r.oid, current_database(), 'CREATE')"
            " FROM pg_roles r WHERE r.rolname = %s",
            [SCHEMA, role],
        )
        attributes = cur.fetchone()
    assert readable == [(SCHEMA, view, False) for view in sorted(VIEWS)]
    assert attributes == (False, False, False, False, 0, False, False, False, False)
    who = ask(
        world.alice,
        sql="SELECT current_user, current_setting('transaction_read_only'), current_setting('chimera.user_id')",
    )
    assert rows(who) == [[role, "on", str(world.alice.pk)]]


def test_statistics_other_sessions_and_large_objects_give_nothing_away(world):
    if not postgres():
        for sql in ("SELECT * FROM pg_stats", "SELECT query FROM pg_stat_activity", "SELECT lo_get(1)"):
            assert not ask(world.alice, sql=sql).ok
        return
    params = connection.get_connection_params()
    params = {k: v for k, v in params.items() if k not in ("cursor_factory", "context", "prepare_threshold")}
    with psycopg.connect(**params, autocommit=True) as other:
        oid = other.execute("SELECT lo_from_bytea(0, %s::bytea)", [SECRET.encode()]).fetchone()[0]
        other.execute(f"SELECT '{SECRET} in a query of another session'")  # stays its last query
        try:
            with connection.cursor() as cur:
                cur.execute("ANALYZE conversations, messages, usage_metrics")
                # Preconditions: the secret is there for a superuser to see.
                cur.execute(
                    "SELECT count(*) FROM pg_stats WHERE histogram_bounds::text LIKE %s", [f"%{SECRET}%"]
                )
                assert cur.fetchone()[0] > 0
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
                    [f"%{SECRET}%"],
                )
                assert cur.fetchone()[0] > 0

            stats = ask(world.alice, sql="SELECT * FROM pg_stats WHERE schemaname = 'public'")
            activity = ask(world.alice, sql="SELECT usename, state, query FROM pg_stat_activity")
            large_object = ask(world.alice, sql=f"SELECT lo_get({oid})")
        finally:
            other.execute("SELECT lo_unlink(%s)", [oid])

    assert rows(stats) == []
    assert len(rows(activity)) >= 2  # the sessions are listed, their queries are not
    assert_nothing_of_bob(activity, world)
    assert "permission denied for large object" in large_object.error


# ---- writes, DDL, and what outlives a query -----------------------------------------------------
WRITES = [
    "INSERT INTO my_usage (provider, model) VALUES ('x', 'y')",
    "UPDATE my_messages SET content = 'changed'",
    "DELETE FROM my_conversations",
    "WITH gone AS (DELETE FROM my_usage RETURNING *) SELECT * FROM gone",
    "DROP VIEW my_messages",
    "DROP TABLE my_messages",
    "CREATE TABLE notes (x int)",
    "ALTER TABLE my_usage ADD COLUMN x int",
    "TRUNCATE my_usage",
    "SELECT nextval('public.auth_permission_id_seq')",
    "SELECT setval('public.auth_permission_id_seq', 1)",
    "SELECT * FROM my_usage FOR UPDATE",
    "SELECT query_to_xml('DELETE FROM public.messages RETURNING id', true, false, '')",
    "GRANT SELECT ON users TO PUBLIC",
    "VACUUM",
]


def test_writes_and_ddl_are_refused_and_change_nothing(world, subtests):
    before = (Conversation.objects.count(), Message.objects.count(), UsageMetric.objects.count())
    for sql in WRITES:
        with subtests.test(msg=sql):
            outcome = ask(world.alice, sql=sql)

            assert not outcome.ok and outcome.error.startswith("The database refused the query: ")
            assert (
                Conversation.objects.count(),
                Message.objects.count(),
                UsageMetric.objects.count(),
            ) == before
            assert set(Message.objects.values_list("content", flat=True)) >= {"Alfama is lovely."}
            assert rows(ask(world.alice, sql="SELECT count(*) FROM my_messages")) == [[4]]


def test_nothing_a_query_does_outlives_it(world):
    if not postgres():
        assert not ask(world.alice, sql="SELECT lo_from_bytea(0, 'x')").ok
        return
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_largeobject_metadata")
        large_objects = cur.fetchone()[0]

    # Allowed inside the read-only transaction, but it is rolled back and its connection closed.
    created = ask(world.alice, sql="SELECT lo_from_bytea(0, 'x') AS oid, pg_advisory_lock(4242) AS locked")

    assert rows(created)[0][0] > 0
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_largeobject_metadata")
        assert cur.fetchone()[0] == large_objects

        def lock_released() -> bool:  # when the closed connection's server process has exited
            cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242")
            return cur.fetchone()[0] == 0

        wait_for(lock_released)


# ---- limits ---------------------------------------------------------------------------------------
COUNT_FOREVER = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r"


def test_a_query_that_runs_too_long_is_stopped_and_says_so(world, settings):
    settings.CHIMERA_SQL_TIMEOUT_MS = 300

    outcome = ask(world.alice, sql=COUNT_FOREVER)

    assert not outcome.ok
    assert outcome.error.startswith("The query was stopped after 0.3 s (queryDatabase's time limit).")
    assert rows(ask(world.alice, sql="SELECT count(*) FROM my_usage")) == [[3]]  # the next one runs


def test_a_sleeping_query_is_stopped_on_postgres(world, settings):
    settings.CHIMERA_SQL_TIMEOUT_MS = 300
    outcome = ask(world.alice, sql="SELECT pg_sleep(30)")
    if postgres():
        assert outcome.error.startswith("The query was stopped after 0.3 s")
    else:
        assert outcome.error == "The database refused the query: no such function: pg_sleep."


def test_the_row_cap_truncates_and_says_so(world, settings):
    many = ask(
        world.alice, sql="WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT x FROM r"
    )
    assert [r[0] for r in rows(many)] == list(range(1, 201))
    assert many.result.output["truncated"] is True and many.result.output["rowCount"] == 200
    assert "Only the first 200 rows" in many.result.output["note"]
    assert many.result.parts[0].props["caption"] == "200 rows (first 200)"

    settings.CHIMERA_SQL_MAX_ROWS = 1
    capped = ask(world.alice, sql="SELECT title FROM my_conversations ORDER BY title")
    assert rows(capped) == [["Soups"]] and capped.result.output["truncated"] is True
    exact = ask(world.alice, sql="SELECT title FROM my_conversations WHERE is_archived")
    assert exact.result.output["truncated"] is False


def test_long_values_are_cut_for_the_model(world, settings):
    settings.CHIMERA_SQL_MAX_CELL_CHARS = 5
    outcome = ask(world.alice, sql="SELECT content FROM my_messages WHERE role = 'user' ORDER BY content")
    assert rows(outcome) == [["A gre…"], ["Where…"]]
    assert "2 long value(s) were cut to 5 characters" in outcome.result.output["note"]


# ---- questions in words ---------------------------------------------------------------------------
def test_canned_questions_answer_and_show_the_sql_that_ran(world):
    conversations = ask(world.alice, question="How many conversations do I have?")
    assert as_dicts(conversations) == [{"conversations": 2, "archived": 1}]
    assert conversations.result.output["sql"].startswith("SELECT count(*) AS conversations")
    assert "ready-made query 'Conversations'" in conversations.result.output["note"]
    assert conversations.result.parts[0].props["caption"] == "Conversations"

    [this_month] = as_dicts(ask(world.alice, question="What did I spend this month?"))
    assert (this_month["calls"], Decimal(str(this_month["cost_usd"]))) == (2, Decimal("0.003"))
    [last_month] = as_dicts(ask(world.alice, question="cost last month"))
    assert (last_month["calls"], Decimal(str(last_month["cost_usd"]))) == (1, Decimal("0.5"))

    by_model = ask(world.alice, question="tokens by model")
    assert rows(by_model) == [
        ["groq", "llama-3.3-70b-versatile", 112, 230, 342],
        ["anthropic", "claude-sonnet-4", 8, 20, 28],
    ]
    assert "GROUP BY provider, model" in by_model.result.output["sql"]

    messages = as_dicts(ask(world.alice, question="how many messages have I sent?"))
    assert {m["role"]: m["messages"] for m in messages} == {"user": 2, "assistant": 2}

    latency = as_dicts(ask(world.alice, question="average latency by provider"))
    assert [(r["provider"], float(r["avg_latency_ms"])) for r in latency] == [
        ("anthropic", 900.0),
        ("groq", 300.0),
    ]

    [cache] = as_dicts(ask(world.alice, question="what is my cache hit rate?"))
    assert (cache["calls"], cache["cache_hits"], float(cache["hit_rate_percent"])) == (3, 1, 33.3)

    per_day = as_dicts(ask(world.alice, question="usage per day this month"))
    assert [r["day"] for r in per_day] == [timezone.now().date().isoformat()]

    assert_nothing_of_bob(by_model, world)
    assert {(r["provider"], r["model"]) for r in as_dicts(by_model)} == ALICE_MODELS


def test_a_question_without_a_ready_made_query_asks_for_sql(world):
    outcome = ask(world.alice, question="What's the weather in Lisbon?")
    assert not outcome.ok
    assert outcome.error.startswith('There is no ready-made query for "What\'s the weather in Lisbon?"')
    assert "Send `sql` instead" in outcome.error
    assert "my_usage(id uuid" in outcome.error


# ---- arguments, tiers, definition -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({}, "send exactly one of `sql` or `question`"),
        (
            {"sql": "SELECT 1", "question": "how many conversations"},
            "send exactly one of `sql` or `question`",
        ),
        ({"sql": "   "}, "send exactly one of `sql` or `question`"),
        ({"sql": "SELECT 1\x00"}, "sql: Value error, must not contain NUL characters"),
        ({"question": "cost\ud800"}, "question: Input should be a valid string, unable to parse raw data"),
        ({"sql": "SELECT 1 " + "x" * 6000}, "sql: String should have at most 5000 characters"),
        ({"question": "q" * 501}, "question: String should have at most 500 characters"),
        ({"sql": 42}, "sql: Input should be a valid string"),
    ],
)
def test_bad_arguments_are_refused_in_words(alice, args, problem):
    outcome = ask(alice, **args)
    assert not outcome.ok
    assert outcome.error.startswith("Invalid arguments for queryDatabase: ")
    assert problem in outcome.error


def test_a_call_without_a_signed_in_user_is_refused():
    ctx = ToolContext(user_id=None, user_tier="free")
    outcome = async_to_sync(registry.invoke)("queryDatabase", {"sql": "SELECT 1"}, ctx)
    assert outcome.error == "queryDatabase needs a signed-in user."


def test_free_and_pro_may_use_it_and_the_model_is_told_the_views_and_dialect():
    assert registry.allowed("queryDatabase", "free") and registry.allowed("queryDatabase", "pro")
    [definition] = registry.definitions(["queryDatabase"], "free")
    description = definition["description"]
    for view, columns in VIEWS.items():
        assert f"- {view}({columns[0].name} {columns[0].type}" in description
    assert ("PostgreSQL" if postgres() else "SQLite") in description
    assert "At most 200 rows; queries stop after 3 s." in description
    assert set(definition["parameters"]["properties"]) == {"sql", "question"}


# ---- the migration ----------------------------------------------------------------------------------
def _reader_exists() -> bool:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", [reader_role(connection.settings_dict["NAME"])]
        )
        return cur.fetchone() is not None


def test_the_migration_is_idempotent_and_reversible(world):
    migration = importlib.import_module("tools.migrations.0001_query_database_reader")
    with connection.schema_editor() as editor:
        migration.create_reader(None, editor)  # again, over what the test database already has
    assert rows(ask(world.alice, sql="SELECT count(*) FROM my_conversations")) == [[2]]

    call_command("migrate", "tools", "zero", verbosity=0)
    try:
        if postgres():
            assert not _reader_exists()
            with connection.cursor() as cur:
                cur.execute(
                    "SELECT has_function_privilege('public', 'set_config(text,text,boolean)', 'EXECUTE')"
                )
                assert cur.fetchone() == (True,)
            assert ask(world.alice, sql="SELECT 1").error == (
                "queryDatabase is not set up on this database yet: run the migrations."
            )
    finally:
        call_command("migrate", "tools", verbosity=0)
    if postgres():
        assert _reader_exists()
    assert rows(ask(world.alice, sql="SELECT count(*) FROM my_conversations")) == [[2]]


def test_it_refuses_to_run_if_the_reader_could_call_set_config(world):
    if not postgres():
        assert not ask(world.alice, sql="SELECT set_config('x.y', 'z', true)").ok
        return
    with connection.cursor() as cur:
        cur.execute("GRANT EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) TO PUBLIC")
    try:
        outcome = ask(world.alice, sql="SELECT set_config('role', 'none', true)")
    finally:
        with connection.cursor() as cur:
            cur.execute("REVOKE EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) FROM PUBLIC")
    assert outcome.error == (
        "queryDatabase is switched off on this database: its read-only role is not locked down yet. "
        "An administrator must finish its setup (the server log says how)."
    )
    assert rows(ask(world.alice, sql="SELECT count(*) FROM my_usage")) == [[3]]
