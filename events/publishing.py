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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pydantic
from django.conf import settings
from django.db import connections, router, transaction

from events import tracing
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
    using = router.db_for_write(StoredEvent)
    _insert(stored, using)
    transaction.on_commit(nudge_relay, using=using)
    return stored


def _insert(stored: StoredEvent, using: str) -> None:
    """Write `stored` as `save()` would, without a savepoint and with a statement made once per database.

    Inside the caller's transaction no savepoint is taken: like `Model.objects.create()`, a failed
    insert (a (subject, sequence) already taken) fails that transaction. Each value is prepared by its
    own field, as for `save()`; `pre_save`/`post_save` signals are not sent for event-log rows.
    """
    connection = connections[using]
    if not connection.features.can_return_columns_from_insert:
        stored.save(using=using, force_insert=True)
        return
    statement = _INSERT_STATEMENTS.get(using)
    if statement is None:
        statement = _INSERT_STATEMENTS[using] = _insert_statement(connection)
    values = [field.get_db_prep_save(getattr(stored, field.attname), connection) for field in _INSERT_FIELDS]
    with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
        cursor.execute(statement, values)
        stored.position = cursor.fetchone()[0]
    stored._state.adding = False
    stored._state.db = using


_INSERT_FIELDS = [field for field in StoredEvent._meta.concrete_fields if not field.primary_key]
_INSERT_STATEMENTS: dict[str, str] = {}


def _insert_statement(connection: Any) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in _INSERT_FIELDS)
    placeholders = ", ".join(["%s"] * len(_INSERT_FIELDS))
    table, pk = quote(StoredEvent._meta.db_table), quote(StoredEvent._meta.pk.column)
    return f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) RETURNING {pk}"


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
) -> list[StoredEvent]:
    """Append several events of one type in one statement, in the caller's transaction, in the order given.

    The same checks and errors as `publish()`, made for every event before anything is written; a
    (subject, sequence) already in the log fails the whole call with `IntegrityError`, as one
    `publish()` would. One nudge of the relay after the commit.
    """
    rows = []
    for event in events:
        columns = _columns(
            event_type, event.data, version, event.subject, event.sequence, correlation_id, source, event.timestamp
        )
        rows.append(StoredEvent(**columns, **message_columns(columns)))
    if not rows:
        return []
    with transaction.atomic():
        stored = StoredEvent.objects.bulk_create(rows)
        transaction.on_commit(nudge_relay)
    return stored


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
