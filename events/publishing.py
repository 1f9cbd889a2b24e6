"""Publishing: append an event to the log, in the caller's transaction.

Guarantee: the row is written in the same database transaction as the caller's state change, so
an event exists if and only if that change committed. Nothing here talks to the broker; after the
commit the relay is nudged (a UDP datagram on `EVENTS_RELAY_WAKE_ADDRESS`, lost harmlessly if no
relay listens: the relay's polling is the safety net).
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pydantic
from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import Q

from events import rowsets, tracing
from events.envelope import check_timestamp, unstorable
from events.errors import InvalidEventData
from events.frames import encode_properties
from events.models import StoredEvent, envelope_of
from events.observability import runs
from events.registry import EventType

logger = logging.getLogger(__name__)


def publish(
    event_type: EventType,
    data: pydantic.BaseModel | Mapping[str, Any],
    *,
    version: str | None = None,
    subject: str | None = None,
    sequence: int | None = None,
    correlation_id: str | None = None,
    source: str | None = None,
    timestamp: datetime | None = None,
) -> StoredEvent:
    """Append `event_type` (validated against `version`, default the newest) to the event log.

    Raises `InvalidEventData` for data that does not match the version's schema or holds text no
    database can store (a NUL character, a lone surrogate), and `InvalidTimestamp` for a
    `timestamp` no envelope can carry (naive, or before 1970).
    """
    columns = _columns(event_type, data, version, subject, sequence, correlation_id, source, timestamp)
    # The message (body and properties) is encoded here, once, so that the relay only moves bytes.
    stored = StoredEvent(**columns, **message_columns(columns))
    _append([stored])
    return stored


@dataclass(frozen=True)
class Publication:
    """One event of a `publish_many()` call."""

    data: pydantic.BaseModel | Mapping[str, Any]
    subject: str | None = None
    sequence: int | None = None
    timestamp: datetime | None = None


def publish_many(
    event_type: EventType,
    events: Iterable[Publication],
    *,
    version: str | None = None,
    correlation_id: str | None = None,
    source: str | None = None,
    skip_taken: bool = False,
) -> list[StoredEvent]:
    """Append several events of one type in the caller's transaction, in the order given, in one statement
    (on SQLite, one per 100 events). Returns the events written.

    The same checks and errors as `publish()`, made for every event before anything is written; a
    (subject, sequence) already in the log fails the whole call with `IntegrityError`, as one
    `publish()` would. One nudge of the relay after the commit.

    With `skip_taken`, an event whose (subject, sequence) is already taken is left out instead, and
    the others are written: for a producer whose clients send again what may have been accepted.
    A (subject, sequence) repeated within `events` is taken by its first event. On PostgreSQL the
    statement itself leaves them out (`ON CONFLICT … DO NOTHING`), also those a concurrent
    transaction is writing (the insert waits for its outcome); elsewhere the taken ones are read
    first, in the same transaction.
    """
    rows = []
    for event in events:
        columns = _columns(
            event_type, event.data, version, event.subject, event.sequence, correlation_id, source, event.timestamp
        )
        rows.append(StoredEvent(**columns, **message_columns(columns)))
    if rows:
        return _append(rows, skip_taken=skip_taken)
    return rows


def _append(rows: list[StoredEvent], skip_taken: bool = False) -> list[StoredEvent]:
    """Insert `rows` in the caller's transaction (or on their own) and nudge the relay after the commit; returns the
    rows written (all of them, unless `skip_taken`).

    No savepoint is taken: like `Model.objects.create()`, a failed insert (a (subject, sequence)
    already taken) fails the caller's transaction. One row: an `INSERT` made once per database, each
    value prepared by its own field as by `save()`. Several: on PostgreSQL one statement with the
    rows as one JSON parameter (events/rowsets.py), elsewhere one `INSERT` per `_ROWS_PER_STATEMENT`
    rows. On PostgreSQL outside a transaction that one statement is a transaction of its own (no
    `BEGIN` and `COMMIT` around it). `pre_save`/`post_save` signals are not sent for event-log rows.
    """
    using = router.db_for_write(StoredEvent)
    connection = connections[using]
    postgres = connection.vendor == "postgresql"
    alone = postgres and connection.get_autocommit() and not connection.in_atomic_block
    with nullcontext() if alone else transaction.atomic(using=using, savepoint=False):
        if skip_taken and not postgres:
            rows = _not_taken(rows, using)
        if postgres and (len(rows) > 1 or skip_taken):
            with connection.cursor() as cursor:
                rows = _insert_as_json(cursor, rows, skip_taken)
        elif not rows:
            return rows
        elif connection.features.can_return_rows_from_bulk_insert:
            size = min(_ROWS_PER_STATEMENT, connection.ops.bulk_batch_size(_FIELDS, rows))
            with connection.cursor() as cursor:
                for start in range(0, len(rows), size):
                    chunk = rows[start : start + size]
                    values = [
                        field.get_db_prep_save(getattr(row, field.attname), connection) for row in chunk for field in _FIELDS
                    ]
                    cursor.execute(_insert_statement(connection, len(chunk)), values)
                    for row, (position,) in zip(chunk, cursor.fetchall(), strict=True):
                        row.position = position
        else:
            StoredEvent.objects.using(using).bulk_create(rows)
        for row in rows:
            row._state.adding, row._state.db = False, using
        if rows:
            transaction.on_commit(nudge_relay, using=using)
    return rows


def _insert_as_json(cursor: Any, rows: list[StoredEvent], skip_taken: bool = False) -> list[StoredEvent]:
    """PostgreSQL: one statement whose one parameter is the rows as a JSON array (events/rowsets.py); returns the rows
    written, with their positions."""
    cursor.execute(_JSON_INSERT_SKIPPING if skip_taken else _JSON_INSERT, [rowsets.as_json(rows, _FIELDS)])
    positions = {event_id: position for position, event_id in cursor.fetchall()}
    written = []
    for row in rows:
        position = positions.get(row.event_id)
        if position is not None:
            row.position = position
            written.append(row)
    return written


def _not_taken(rows: list[StoredEvent], using: str) -> list[StoredEvent]:
    """The rows whose (subject, sequence) no stored event has, nor an earlier row of `rows` (as `ON CONFLICT DO
    NOTHING` leaves out a repeat within its statement); rows without a sequence are never taken. Read in the caller's
    transaction, which on SQLite (`BEGIN IMMEDIATE`) holds the write lock: no other writer takes one meanwhile."""
    wanted: dict[str, list[int]] = {}
    for row in rows:
        if row.sequence is not None:
            wanted.setdefault(row.subject, []).append(row.sequence)
    if not wanted:
        return rows
    query = Q()
    for subject, sequences in wanted.items():
        query |= Q(subject=subject, sequence__in=sequences)
    taken = set(StoredEvent.objects.using(using).filter(query).values_list("subject", "sequence"))
    kept = []
    for row in rows:
        if row.sequence is not None:
            if (row.subject, row.sequence) in taken:
                continue
            taken.add((row.subject, row.sequence))
        kept.append(row)
    return kept


_FIELDS = rowsets.insert_fields(StoredEvent)
_JSON_INSERT = rowsets.insert_statement(StoredEvent, _FIELDS, returning=("position", "event_id"))
# The unique (subject, sequence) of rows with a sequence (the partial index event_subject_sequence_unique).
_JSON_INSERT_SKIPPING = rowsets.insert_statement(
    StoredEvent, _FIELDS, returning=("position", "event_id"), skip=("subject", "sequence"), skip_where='"sequence" IS NOT NULL'
)
_ROWS_PER_STATEMENT = 100
_STATEMENTS: dict[tuple[str, int], str] = {}


def _insert_statement(connection: Any, rows: int) -> str:
    """`INSERT … VALUES (…), … RETURNING position` for `rows` rows (PostgreSQL and SQLite return them in that order)."""
    statement = _STATEMENTS.get((connection.alias, rows))
    if statement is None:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in _FIELDS)
        placeholders = ", ".join(
            connection.ops.binary_placeholder_sql(None) if field.get_internal_type() == "BinaryField" else "%s"
            for field in _FIELDS
        )
        table, pk = quote(StoredEvent._meta.db_table), quote(StoredEvent._meta.pk.column)
        values = ", ".join([f"({placeholders})"] * rows)
        statement = _STATEMENTS[connection.alias, rows] = f"INSERT INTO {table} ({columns}) VALUES {values} RETURNING {pk}"
    return statement


def message_columns(columns: dict[str, Any]) -> dict[str, bytes | None]:
    """The `body` and `header` columns: the message as the relay will send it. A header AMQP cannot carry (a
    text property over 255 bytes) is left to the relay, which sets the row aside saying why."""
    envelope = envelope_of(columns)
    try:
        header = encode_properties(envelope.amqp_properties())
    except Exception:
        header = None
    return {"body": envelope.to_json(), "header": header}


def _columns(
    event_type: EventType,
    data: pydantic.BaseModel | Mapping[str, Any],
    version: str | None,
    subject: str | None,
    sequence: int | None,
    correlation_id: str | None,
    source: str | None,
    timestamp: datetime | None,
) -> dict[str, Any]:
    """The event-log columns of one event, checked: its data against the version's schema, its timestamp."""
    version = version or event_type.latest
    payload = event_type.validate(data, version).model_dump(mode="json")
    if (reason := unstorable(payload)) is not None:
        raise InvalidEventData(f"data of {event_type.name} {version} cannot be stored: {reason}")
    timestamp = datetime.now(UTC) if timestamp is None else check_timestamp(timestamp)
    context = tracing.next_context(correlation_id)
    return {
        "event_id": uuid.uuid4(),
        "topic": event_type.topic,
        "event_type": event_type.name,
        "event_version": version,
        "source": source or settings.EVENTS_SOURCE,
        "subject": subject or "",
        "sequence": sequence,
        "timestamp": timestamp,
        "data": payload,
        "correlation_id": context.correlation_id,
        "causation_id": context.causation_id or "",
        "metadata": {"traceparent": context.traceparent, **runs.publisher()},
    }


_nudge_socket: socket.socket | None = None


def nudge_relay() -> None:
    """Wake a waiting relay now instead of at its next poll. Never raises."""
    global _nudge_socket
    address = settings.EVENTS_RELAY_WAKE_ADDRESS
    if not address:
        return
    host, _, port = address.rpartition(":")
    try:
        if _nudge_socket is None:
            _nudge_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            _nudge_socket.setblocking(False)
        _nudge_socket.sendto(b"wake", (host, int(port)))
    except (OSError, ValueError) as exc:
        logger.debug("relay nudge to %s failed: %s", address, exc)
