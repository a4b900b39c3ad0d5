"""The writes every turn makes, without the ORM's query machinery.

``Model.objects.create``, ``bulk_create`` and ``QuerySet.update`` build a query object, compile it and
walk several layers per value; on the few writes each turn makes (the user's message and the answer's
placeholder before the provider is called, the final answer and its usage rows after) that was most
of their Python time (issue 14: measured in ``bench/CHANGES.md``). These send the same statements:
every value goes through its field's ``get_db_prep_save`` and ``pre_save`` (so UUIDs, JSON, datetimes
and ``auto_now`` columns are what the ORM would send, on PostgreSQL and SQLite alike), in one
statement per call. No signals are sent; none is connected to these models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connections, router
from django.db.models import Field, Model
from django.db.models.constants import OnConflict


def insert(objs: Sequence[Model], *, ignore_conflicts: bool = False) -> None:
    """INSERT ``objs`` (instances of one model, primary keys set) as one statement: ``bulk_create``
    without its batching and bookkeeping. ``ignore_conflicts``: rows whose key exists are skipped."""
    if not objs:
        return
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    ops = connection.ops
    fields = model._meta.concrete_fields
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    conflict = OnConflict.IGNORE if ignore_conflicts else None
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
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objs for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    for obj in objs:  # as bulk_create leaves them: saved, not to be inserted again by save()
        obj._state.adding = False
        obj._state.db = connection.alias


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
