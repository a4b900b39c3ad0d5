"""chimera.rows writes what the ORM would write: the same stored values, read back through the ORM, on
whichever database the suite runs on (PostgreSQL in CI, SQLite at a desk)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from chat.models import Conversation, Message
from chimera import rows
from usage.models import UsageMetric

pytestmark = pytest.mark.django_db

FIELDS = [f.name for f in Message._meta.concrete_fields if f.name not in ("id", "created_at", "updated_at")]


def message(conversation: Conversation, **values) -> Message:
    defaults = {
        "role": Message.Role.ASSISTANT,
        "content": "naïve 😀 text\nwith 'quotes' and \\backslashes",
        "status": Message.Status.STREAMING,
        "metadata": {"tier": "balanced", "nested": {"n": 10**15, "list": [1, None, "x"]}},
    }
    return Message(conversation=conversation, **{**defaults, **values})


def stored(pk) -> dict:
    return Message.objects.filter(pk=pk).values(*FIELDS).get()


def test_insert_stores_what_bulk_create_stores(alice):
    conversation = Conversation(user=alice, title="t", settings={"tier": "fast"})
    rows.insert([conversation])
    by_orm, by_rows = message(conversation), message(conversation)
    Message.objects.bulk_create([by_orm])
    rows.insert([by_rows, message(conversation, parent_message_id=by_rows.id, data_parts=None)])

    assert stored(by_rows.pk) == stored(by_orm.pk)
    assert Message.objects.get(pk=by_rows.pk).created_at == by_rows.created_at  # auto_now_add filled in
    assert by_rows.created_at.tzinfo is not None
    assert Conversation.objects.get(pk=conversation.pk).settings == {"tier": "fast"}
    assert Message.objects.filter(conversation=conversation, data_parts__isnull=True).count() == 3
    assert not by_rows._state.adding  # saved: a later save() updates rather than inserts again
    by_rows.content = "changed"
    by_rows.save()
    assert Message.objects.filter(conversation=conversation).count() == 3


def test_ignored_conflicts_add_nothing_and_others_raise(alice):
    row = UsageMetric(
        id=uuid.uuid4(), user=alice, provider="groq", model="m", cost_usd=Decimal("0.000123"), input_tokens=7
    )
    rows.insert([row], ignore_conflicts=True)
    again = UsageMetric(id=row.id, user=alice, provider="groq", model="m", cost_usd=Decimal("9"))
    rows.insert([again], ignore_conflicts=True)

    [kept] = UsageMetric.objects.filter(user=alice)
    assert (kept.cost_usd, kept.input_tokens) == (Decimal("0.000123"), 7)

    with pytest.raises(IntegrityError), transaction.atomic():
        rows.insert([UsageMetric(id=row.id, user=alice, provider="groq", model="m")])


def test_update_changes_one_row_as_queryset_update_does(alice):
    conversation = Conversation(user=alice)
    rows.insert([conversation])
    answer = message(conversation)
    rows.insert([answer])
    twin = message(conversation)
    rows.insert([twin])
    when = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    values = {"content": "done", "status": "complete", "metadata": None, "data_parts": [{"type": "x"}]}

    assert rows.update(Message, answer.pk, {**values, "updated_at": when}) == 1
    Message.objects.filter(pk=twin.pk).update(**values, updated_at=when)
    assert stored(answer.pk) == stored(twin.pk)
    assert Message.objects.get(pk=answer.pk).updated_at == when
    assert Message.objects.filter(pk=answer.pk, metadata__isnull=True).exists()
    assert rows.update(Conversation, conversation.pk, {"active_leaf": answer.pk}) == 1
    assert Conversation.objects.get(pk=conversation.pk).active_leaf_id == answer.pk
    assert rows.update(Message, uuid.uuid4(), {"content": "nobody"}) == 0


def test_rows_inserted_together_go_in_all_or_none(alice):
    conversation = Conversation(user=alice, title="together")
    question = message(conversation, role=Message.Role.USER, status=Message.Status.COMPLETE)
    answer = message(conversation, parent_message_id=question.id)
    rows.insert_together([conversation], [question, answer])
    assert Message.objects.filter(conversation__title="together").count() == 2
    assert Message.objects.get(pk=answer.pk).parent_message_id == question.pk

    # The same conversation id again: the statement fails whole, so neither its messages are stored.
    again = Conversation(id=conversation.id, user=alice)
    orphan = message(again)
    with pytest.raises(IntegrityError), transaction.atomic():
        rows.insert_together([again], [orphan])
    assert not Message.objects.filter(pk=orphan.pk).exists()


def test_load_reads_a_row_into_what_the_orm_loads(alice):
    from django.db import connection

    from accounts.models import User

    alice.tier = User.Tier.PRO
    alice.last_login = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    alice.first_name = "Ålice 'q' \\"
    alice.save()
    sql = f"SELECT {rows.select_columns(User, 'u')} FROM users u WHERE u.id = %s"
    with rows.cursor(connection) as cursor:
        cursor.execute(sql, [alice.pk])
        values = cursor.fetchone()

    loaded, by_orm = rows.load(User, connection, values), User.objects.get(pk=alice.pk)

    assert {f.attname: getattr(loaded, f.attname) for f in User._meta.concrete_fields} == {
        f.attname: getattr(by_orm, f.attname) for f in User._meta.concrete_fields
    }
    assert isinstance(loaded.pk, uuid.UUID) and loaded.last_login.tzinfo is not None
    assert not loaded._state.adding and loaded._state.db == connection.alias
    loaded.first_name = "saved again"
    loaded.save()  # an UPDATE of that row, not a second one
    assert User.objects.get(pk=alice.pk).first_name == "saved again"


def test_the_cursor_prepares_its_statement_on_postgresql_only_when_asked(alice, settings):
    """On PostgreSQL the statement is planned once per connection (pg_prepared_statements lists it);
    DB_PREPARED_STATEMENTS=False (a pooler in transaction mode) sends it unprepared, as elsewhere."""
    from django.db import connection

    def run(marker: str):
        with rows.cursor(connection) as cursor:
            cursor.execute(f"SELECT %s AS {marker}, count(*) FROM users WHERE id = %s", [marker, alice.pk])
            return cursor.fetchone()

    def prepared(marker: str) -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", [f"%{marker}%"]
            )
            return cursor.fetchone()[0] > 0

    settings.CHIMERA_DB_PREPARED = True
    assert run("chimera_on") == ("chimera_on", 1)
    settings.CHIMERA_DB_PREPARED = False
    assert run("chimera_off") == ("chimera_off", 1)
    if connection.vendor == "postgresql":
        assert prepared("chimera_on") and not prepared("chimera_off")
    with pytest.raises(IntegrityError), transaction.atomic():  # errors are Django's, as from its own cursor
        settings.CHIMERA_DB_PREPARED = True
        with rows.cursor(connection) as cursor:
            cursor.execute("INSERT INTO users (id) VALUES (%s)", [alice.pk])
