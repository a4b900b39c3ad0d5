"""The writes every turn makes, without the ORM's query machinery.

``Model.objects.create``, ``bulk_create`` and ``QuerySet.update`` build a query object, compile it and
walk several layers per value; on the few writes each turn makes (the user's message and the answer's
placeholder before the provider is called, the final answer and its usage rows after) that was most
of their Python time (issue 14: measured in ``bench/CHANGES.md``). These send the same statements:
every value goes through its field's ``get_db_prep_save`` and ``pre_save`` (so UUIDs, JSON, datetimes
and ``auto_now`` columns are what the ORM would send, on PostgreSQL and SQLite alike), in one
statement per call (``insert_together``: one for several models, on PostgreSQL). No signals are
sent; none is connected to these models.

``cursor`` runs a statement prepared once per connection on PostgreSQL, then sent as its name and
parameters: the server plans it once instead of on every call. The API key lookup (``accounts.apikeys``,
a join) uses it: measured on the bench's Postgres with the connection half a second idle, as a turn
finds it, 1.42 ms before and 0.87 to 0.91 ms after; 0.37 and 0.17 ms back to back (bench/CHANGES.md).
The inserts and updates here do not: their plans are cheap, and binding their many values on the
server measured slower than Django's client-side binding. Django leaves prepared statements off
because a pooler in transaction mode (PgBouncer before 1.21) cannot keep them;
``DB_PREPARED_STATEMENTS=False`` turns them off here for such a setup.
``load`` and ``select_columns`` read a model's row without the ORM's query building.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from django.conf import settings
from django.db import connections, router, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import Field, Model
from django.db.models.constants import OnConflict

M = TypeVar("M", bound=Model)


class _Prepared(CursorWrapper):
    """Django's cursor wrapper (its execute wrappers and error mapping kept) over a psycopg cursor
    that binds on the server and prepares each statement the first time this connection sends it."""

    def _execute(self, sql, params, *ignored):
        self.db.validate_no_broken_transaction()
        with self.db.wrap_database_errors:
            return self.cursor.execute(sql, params, prepare=True)


def cursor(connection) -> CursorWrapper:
    """A cursor whose statements are prepared on PostgreSQL (see above), else Django's own. While
    queries are logged (DEBUG, tests that count them) it is Django's own, so they are seen."""
    if connection.vendor != "postgresql" or not settings.CHIMERA_DB_PREPARED or connection.queries_logged:
        return connection.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor  # type: ignore[attr-defined]  # psycopg 3 only

    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    return _Prepared(ServerBindingCursor(connection.connection), connection)


def load(model: type[M], connection, values: Sequence[Any]) -> M:
    """The instance the ORM would load from ``values``: one per concrete field, in their order, as the
    database returned them (``select_columns`` asks for them so), through the fields' converters."""
    converters = _converters(model, connection)
    if converters:
        values = list(values)
        for i, convert, expression in converters:
            values[i] = convert(values[i], expression, connection)
    return model.from_db(connection.alias, [f.attname for f in model._meta.concrete_fields], values)


def select_columns(model: type[Model], table: str) -> str:
    """``table."column", …`` for every concrete field of ``model``: the row ``load`` takes."""
    quote = connections[router.db_for_read(model)].ops.quote_name
    return ", ".join(f"{table}.{quote(f.column)}" for f in model._meta.concrete_fields)


_converter_cache: dict[tuple[type[Model], str], list[tuple[int, Any, Any]]] = {}


def _converters(model: type[Model], connection) -> list[tuple[int, Any, Any]]:
    key = (model, connection.vendor)
    found = _converter_cache.get(key)
    if found is None:
        found = []
        for i, f in enumerate(model._meta.concrete_fields):
            column = f.get_col(model._meta.db_table)
            for convert in connection.ops.get_db_converters(column) + f.get_db_converters(connection):  # type: ignore[attr-defined]
                found.append((i, convert, column))
        _converter_cache[key] = found
    return found


def insert(objs: Sequence[Model], *, ignore_conflicts: bool = False) -> None:
    """INSERT ``objs`` (instances of one model, primary keys set) as one statement: ``bulk_create``
    without its batching and bookkeeping. ``ignore_conflicts``: rows whose key exists are skipped."""
    if not objs:
        return
    connection = connections[router.db_for_write(type(objs[0]))]
    sql, params = _insert_sql(objs, connection, OnConflict.IGNORE if ignore_conflicts else None)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    _saved(objs, connection.alias)


def insert_together(*groups: Sequence[Model]) -> None:
    """INSERT each group (instances of one model each), all or none. On PostgreSQL that is one
    statement (each group but the last a data-modifying CTE): one round trip, atomic by itself, so
    outside a transaction it needs no BEGIN and COMMIT of its own (two round trips fewer). Elsewhere,
    one INSERT per group in a transaction. Foreign keys between the groups are checked at the end of
    the statement (Django makes them DEFERRABLE INITIALLY DEFERRED)."""
    groups = tuple(g for g in groups if g)
    if not groups:
        return
    connection = connections[router.db_for_write(type(groups[0][0]))]
    if connection.vendor != "postgresql":
        with transaction.atomic(using=connection.alias):
            for group in groups:
                insert(group)
        return
    statements = [_insert_sql(group, connection, None) for group in groups]
    *first, (last, _) = statements
    sql = (
        "WITH " + ", ".join(f"w{i} AS ({s})" for i, (s, _) in enumerate(first)) + " " if first else ""
    ) + last
    with connection.cursor() as cursor:
        cursor.execute(sql, [p for _, params in statements for p in params])
    for group in groups:
        _saved(group, connection.alias)


def _insert_sql(objs: Sequence[Model], connection, conflict: OnConflict | None) -> tuple[str, list[Any]]:
    model = type(objs[0])
    ops = connection.ops
    fields = model._meta.concrete_fields
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = " ".join(
        part
        for part in (
            ops.insert_statement(on_conflict=conflict),
            ops.quote_name(model._meta.db_table),
            "(" + ", ".join(ops.quote_name(f.column) for f in fields) + ")",
            "VALUES",
            ", ".join([row] * len(objs)),
            ops.on_conflict_suffix_sql(fields, conflict, None, None),
        )
        if part
    )
    return sql, [f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objs for f in fields]


def _saved(objs: Sequence[Model], alias: str) -> None:
    for obj in objs:  # as bulk_create leaves them: saved, not to be inserted again by save()
        obj._state.adding = False
        obj._state.db = alias


def update(model: type[Model], pk: Any, values: Mapping[str, Any]) -> int:
    """UPDATE the row ``pk`` of ``model`` with ``values`` (field name → value): ``filter(pk=pk).update()``
    in one statement. Returns the number of rows changed (0 or 1)."""
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    fields = [_column(model, name) for name in values]
    key = _column(model, model._meta.pk.name if model._meta.pk is not None else "id")
    params = [f.get_db_prep_save(v, connection) for f, v in zip(fields, values.values(), strict=True)]
    params.append(key.get_db_prep_save(pk, connection))
    sql = "UPDATE {} SET {} WHERE {} = %s".format(
        quote(model._meta.db_table),
        ", ".join(f"{quote(f.column)} = %s" for f in fields),
        quote(key.column),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _column(model: type[Model], name: str) -> Field:
    field = model._meta.get_field(name)
    if not isinstance(field, Field) or not field.column:
        raise ValueError(f"{model.__name__}.{name} is not a column of its own")
    return field
