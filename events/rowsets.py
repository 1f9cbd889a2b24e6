"""Many rows in one statement on PostgreSQL, however many: the rows travel as one JSON parameter.

Guarantee: a row written or updated here holds the values the ORM would have written for the same
model instance (each column is converted by PostgreSQL from its JSON value into its own type), for
fields of the kinds the project uses: text, numbers, booleans, UUIDs, dates and times, bytes and
JSON. A value of another kind (a timedelta, say) raises `TypeError` before anything is written, as
does a number JSON cannot carry (NaN, infinity) `ValueError`.

Why: a multi-row `VALUES` list has one parameter per column and row. The ORM compiles it for each
call, and psycopg parses it again each time, because it caches only statements with at most 50
parameters. With `json_populate_recordset(NULL::<table>, %s)` the statement is the same for any
number of rows, and the JSON is encoded in C. Other databases use the ORM's `bulk_create` and
`bulk_update`.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from django.db import connections, models, router

# In the `FROM` of a statement run on its own (autocommit, PostgreSQL): that statement's commit does not wait for the
# disk. `set_config(…, true)` is `SET LOCAL`: it ends with the statement's transaction, leaving nothing on the session
# (for a pooler to pass on to another client).
UNSYNCED = "(SELECT set_config('synchronous_commit', 'off', true)) AS unsynced"


def json_value(value: Any) -> Any:
    """A column's value as JSON that PostgreSQL's input function for the column's type reads back as that value."""
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return "\\x" + bytes(value).hex()  # bytea's hex input format
    return value


def as_json(objs: Sequence[models.Model], fields: Sequence[models.Field]) -> str:
    return json.dumps(
        [{field.column: json_value(getattr(obj, field.attname)) for field in fields} for obj in objs],
        separators=(",", ":"),
        allow_nan=False,  # JSON has no NaN or infinity: refused here, not by the server
    )


def _names(model: type[models.Model], fields: Sequence[models.Field]) -> tuple[str, str]:
    return f'"{model._meta.db_table}"', ", ".join(f'"{field.column}"' for field in fields)


def insert_statement(
    model: type[models.Model],
    fields: Sequence[models.Field],
    returning: Sequence[str] = (),
    skip: Sequence[str] = (),
    skip_where: str = "",
) -> str:
    """`INSERT` of the rows of one JSON array parameter (PostgreSQL); with `skip`, the columns of a unique
    constraint, rows whose values there are already taken are left out (`ON CONFLICT … DO NOTHING`); `skip_where`
    is the condition of that constraint when it is partial."""
    table, columns = _names(model, fields)
    statement = f"INSERT INTO {table} ({columns}) SELECT {columns} FROM json_populate_recordset(NULL::{table}, %s::json)"
    if skip:
        statement += " ON CONFLICT (" + ", ".join(f'"{column}"' for column in skip) + ")"
        statement += f" WHERE {skip_where} DO NOTHING" if skip_where else " DO NOTHING"
    if returning:
        statement += " RETURNING " + ", ".join(f'"{column}"' for column in returning)
    return statement


def update_statement(model: type[models.Model], fields: Sequence[models.Field], unsynced: bool = False) -> str:
    """`UPDATE` of `fields` of the rows (by primary key) of one JSON array parameter (PostgreSQL); `unsynced` adds
    `UNSYNCED` to its `FROM`."""
    table, _ = _names(model, fields)
    pk = model._meta.pk.column
    assignments = ", ".join(f'"{field.column}" = v."{field.column}"' for field in fields)
    rows = f"json_populate_recordset(NULL::{table}, %s::json) AS v" + (f", {UNSYNCED}" if unsynced else "")
    return f'UPDATE {table} SET {assignments} FROM {rows} WHERE {table}."{pk}" = v."{pk}"'


def _destination(objs: Sequence[models.Model]) -> tuple[type[models.Model], str, Any]:
    """The model of `objs`, the database alias it is written to and that database's connection."""
    model = type(objs[0])
    using = router.db_for_write(model)
    return model, using, connections[using]


@functools.cache
def insert_fields(model: type[models.Model]) -> tuple[models.Field, ...]:
    """The columns an insert writes: every concrete field but the primary key, which the database sets."""
    return tuple(field for field in model._meta.concrete_fields if not field.primary_key)


@functools.cache
def _insert_plan(model: type[models.Model], returning: tuple[str, ...], skip: tuple[str, ...]) -> str:
    """The statement of `insert()` and `insert_new()` for `model` (made once per model and shape)."""
    return insert_statement(model, insert_fields(model), returning, skip)


@functools.cache
def _stamped(model: type[models.Model]) -> tuple[models.Field, ...]:
    """The fields whose time `save()` sets on insert (`auto_now`, `auto_now_add`)."""
    return tuple(f for f in insert_fields(model) if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False))


def _stamp(model: type[models.Model], objs: Sequence[models.Model]) -> None:
    for field in _stamped(model):
        for obj in objs:
            field.pre_save(obj, add=True)  # sets the time, as `save()` and `bulk_create()` do


@functools.cache
def _update_plan(model: type[models.Model], names: tuple[str, ...], unsynced: bool) -> tuple[str, tuple[models.Field, ...]]:
    """The statement of `update()` for `model` and `names`, and the fields its JSON carries (made once)."""
    fields = [model._meta.get_field(name) for name in names]
    return update_statement(model, fields, unsynced), (model._meta.pk, *fields)


def insert(objs: Sequence[models.Model], *, pks: bool = False) -> None:
    """Insert `objs` (all of one model, primary keys set by the database): like `bulk_create(objs)`. On PostgreSQL
    the primary keys are read back only with `pks=True` (in the order of the rows, which the statement inserts
    in the order of the array: the order `bulk_create` relies on for its `VALUES` list)."""
    if not objs:
        return
    model, using, connection = _destination(objs)
    if connection.vendor != "postgresql":
        model.objects.using(using).bulk_create(objs)
        return
    _stamp(model, objs)
    statement = _insert_plan(model, (model._meta.pk.column,) if pks else (), ())
    with connection.cursor() as cursor:
        cursor.execute(statement, [as_json(objs, insert_fields(model))])
        if pks:
            attname = model._meta.pk.attname
            for obj, (value,) in zip(objs, cursor.fetchall(), strict=True):
                setattr(obj, attname, value)
    for obj in objs:
        obj._state.adding, obj._state.db = False, using


def insert_new(objs: Sequence[models.Model], unique: Sequence[str]) -> list[models.Model]:
    """PostgreSQL: insert those of `objs` whose values of the fields `unique` (a unique constraint's, all text) no row
    has yet, in one statement, and return them with their primary keys, in the order of `objs`. A row another
    transaction is inserting with the same values waits for it: left out if it commits, inserted if it rolls back.
    `objs` must not repeat values among themselves."""
    if not objs:
        return []
    model, using, connection = _destination(objs)
    if connection.vendor != "postgresql":
        raise NotImplementedError("insert_new() is for PostgreSQL; elsewhere, read what exists and insert() the rest")
    _stamp(model, objs)
    columns = tuple(model._meta.get_field(name).column for name in unique)
    statement = _insert_plan(model, (model._meta.pk.column, *columns), columns)
    with connection.cursor() as cursor:
        cursor.execute(statement, [as_json(objs, insert_fields(model))])
        inserted = {tuple(row[1:]): row[0] for row in cursor.fetchall()}
    attnames = [model._meta.get_field(name).attname for name in unique]
    attname = model._meta.pk.attname
    new = []
    for obj in objs:
        pk = inserted.get(tuple(str(getattr(obj, name)) for name in attnames))
        if pk is not None:
            setattr(obj, attname, pk)
            obj._state.adding, obj._state.db = False, using
            new.append(obj)
    return new


def update(objs: Sequence[models.Model], names: Sequence[str], *, unsynced: bool = False) -> None:
    """Write the fields `names` of `objs` (all of one model, saved before): like `bulk_update(objs, names)`.

    `unsynced`, outside a transaction on PostgreSQL: the statement's own commit does not wait for the disk (`UNSYNCED`),
    for writes that a database crash may lose. Inside a transaction it is ignored: it would hold for the whole of it."""
    if not objs:
        return
    model, using, connection = _destination(objs)
    if connection.vendor != "postgresql":
        model.objects.using(using).bulk_update(objs, names)
        return
    statement, fields = _update_plan(model, tuple(names), unsynced and not connection.in_atomic_block)
    with connection.cursor() as cursor:
        cursor.execute(statement, [as_json(objs, fields)])
