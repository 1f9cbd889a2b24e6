"""The relay: publishes the event log (the outbox) to RabbitMQ.

Guarantees:
- Every committed event is published at least once, in log order, as a persistent message on
  the topic exchange `events`, and marked published only after the broker confirmed it. A crash
  between confirm and mark republishes it once its lease runs out: consumers deduplicate.
- Rows are leased (`claimed_by`, `claimed_until`) in short transactions of their own, so no
  database lock is held while the relay talks to the broker.
- Confirms are pipelined: one batch is in flight while the next is leased and sent, and
  acknowledgements are collected as they come, not one round trip per message.
- On PostgreSQL the running relay writes the mark of a confirmed batch on a database connection
  of its own (`MarkWriter`) while it leases and sends the next: marks queue (a bounded number) and
  are written together, always after the confirm, a few milliseconds later at a trickle. A mark
  that fails is tried once more on a new connection; failing again, it is an outage like any
  other: its rows stay unpublished and are published again, which consumers absorb. The single
  active relay forgets a row it has in flight only once its mark has committed before the read
  that would see it.
- Several relays may run against PostgreSQL: each leases rows with `FOR UPDATE SKIP LOCKED`, and
  a row whose subject has an earlier unpublished row held by another relay waits, so events of
  one subject still leave in log order.
- Or, with `EVENTS_RELAY_SINGLE_ACTIVE` (PostgreSQL), one relay publishes at a time: the one
  holding a session-level advisory lock. It reads unpublished rows without leasing them (it
  knows what it has in flight) and only writes the mark, saving a row version per event; the
  others stand by, trying for the lock every poll, and the first to get it takes over as soon
  as the active relay's database session ends (a crash, a kill, a lost connection). What was in
  flight then is published again, which consumers absorb. A relay that loses its session stops
  publishing until it holds the lock again. (The lock is the session's: this mode wants the relay
  connected directly or through session pooling, not through a transaction-pooling PgBouncer.)
- The log never stops behind one row: a row that cannot be made into a message (a timestamp AMQP
  cannot carry, say) or whose message would exceed `EVENTS_MAX_MESSAGE_BYTES` is set aside with
  `rejected_reason` (shown in the admin) and the rows behind it flow on.
- Woken by a producer's nudge, the relay leases at once, so an event on a quiet bus costs no wait.
  When the nudges that came in while its last batch was out say more events are due within
  `EVENTS_RELAY_LINGER_MS` (5 ms), it lingers that long first, so the next batch takes them too:
  fewer, larger batches under load (a batch costs a lease, a confirm and a mark whatever its
  size), no wait when events come one at a time.
- Only outages are retried: broker or database outages are waited out with backoff; nothing is
  marked unless confirmed, and a relay that loses the broker gives its leases back at once. A
  broker that stops answering without closing the connection (a frozen node, a stalled link) is
  an outage too: writes and handshakes time out, and the relay reconnects.

Hooks (no-ops by default): `on_confirmed(positions)` after the broker confirmed a batch and
before the rows are marked.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import amqp
from django.conf import settings
from django.db import Error as DatabaseError
from django.db import close_old_connections, connections, transaction
from django.db import connection as db_connection
from kombu import Connection
from kombu.exceptions import OperationalError as KombuOperationalError

from events import rowsets, telemetry, topology
from events.frames import decode_properties, encode_publish
from events.models import StoredEvent, envelope_of
from events.observability import logs, metrics

logger = logging.getLogger(__name__)


# The relay writes the frames of a batch to the socket in pieces of about this size.
WRITE_BYTES = 256 * 1024
# The PostgreSQL advisory lock of the single active relay (EVENTS_RELAY_SINGLE_ACTIVE): "events.relay" as a number.
SINGLE_ACTIVE_LOCK = 0x6576656E74732E72


class ConfirmTimeout(Exception):
    """The broker did not confirm the messages in flight in time."""


def outage_errors(connection: Connection) -> tuple[type[BaseException], ...]:
    """Errors that mean the broker or the database is unavailable: wait and try again."""
    # kombu reports a connection it could not make (refused, timed out) as its own OperationalError.
    return (
        DatabaseError,
        ConfirmTimeout,
        OSError,
        KombuOperationalError,
        *connection.connection_errors,
        *connection.channel_errors,
    )


@dataclass(frozen=True)
class Outgoing:
    position: int
    routing_key: str
    body: bytes
    properties: dict[str, Any] | None
    encoded: bytes | None = None  # the properties as `publish()` encoded them (then `properties` is None)


@dataclass(frozen=True)
class LeasedRow:
    """A row of the event log as the relay reads it: the envelope's columns and the stored body."""

    position: int
    topic: str
    event_type: str
    event_version: str
    source: str
    subject: str
    sequence: int | None
    timestamp: Any
    event_id: Any
    correlation_id: str
    causation_id: str
    metadata: Any
    body: bytes | memoryview | None
    data: Any  # read as text; decoded only for rows without a stored body
    header: bytes | memoryview | None = None

    def columns(self) -> dict[str, Any]:
        """The row in the form `envelope_of` takes (as Django's field converters would give it)."""
        return {
            "event_type": self.event_type,
            "event_version": self.event_version,
            "timestamp": _aware(self.timestamp),
            "event_id": self.event_id if isinstance(self.event_id, uuid.UUID) else uuid.UUID(str(self.event_id)),
            "source": self.source,
            "data": _json(self.data) if self.body is None else None,  # decoded only when the relay encodes
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "subject": self.subject,
            "sequence": self.sequence,
            "metadata": _json(self.metadata) or {},
        }


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


class LogStatements:
    """The relay's SQL on the event log: the hot path runs on the cursor, without model instances."""

    _cache: dict[str, LogStatements] = {}

    @classmethod
    def of(cls, conn: Any) -> LogStatements:
        statements = cls._cache.get(conn.alias)
        if statements is None or statements.vendor != conn.vendor:
            statements = cls._cache[conn.alias] = cls(conn)
        return statements

    def __init__(self, conn: Any) -> None:
        self.vendor = conn.vendor
        self.ops = conn.ops
        q = conn.ops.quote_name
        self.table = q(StoredEvent._meta.db_table)
        position = q("position")
        self.position = position
        # Rows of the partial index event_unpublished_idx.
        self.pending = "published_at IS NULL AND rejected_reason = ''"
        # A row `publish()` wrote carries its message (body and header): PostgreSQL does not send the columns it
        # is made of, which the driver would otherwise parse (JSON, timestamps, UUIDs). (Not on SQLite: its
        # `UPDATE … RETURNING` gives NULL for such a CASE, and its columns come as text, cheap to skip.)
        stored = "body IS NOT NULL AND header IS NOT NULL"

        def unless_stored(column: str) -> str:
            return f"CASE WHEN {stored} THEN NULL ELSE {column} END" if conn.vendor == "postgresql" else column

        columns = (
            f"{position}, topic, event_type, event_version, source, subject, {q('sequence')}, "
            f"{unless_stored(q('timestamp'))}, {unless_stored('event_id')}, correlation_id, causation_id, "
            f"{unless_stored('metadata')}, body, {unless_stored('data')}, header"
        )
        self.columns = columns
        self.postgres = conn.vendor == "postgresql"
        self.returning = self.postgres or (conn.vendor == "sqlite" and _sqlite_version(conn) >= (3, 35))
        pick = (
            f"SELECT {position} FROM {self.table} WHERE {self.pending} AND (claimed_until IS NULL OR claimed_until < %s) "
            f"ORDER BY {position} LIMIT %s"
        )
        if self.postgres:
            pick += " FOR UPDATE SKIP LOCKED"
        self.pick = pick
        # On PostgreSQL the relay's bookkeeping statements run on their own, each its own transaction, and say
        # themselves that their commit need not wait for the disk (`set_config(…, true)` is `SET LOCAL`): one round
        # trip each, instead of BEGIN, SET LOCAL, the statement and COMMIT.
        self.unsynced = f" FROM {rowsets.UNSYNCED}" if self.postgres else ""
        self.lease_sql = (
            f"UPDATE {self.table} SET claimed_by = %s, claimed_until = %s{self.unsynced} "
            f"WHERE {position} IN ({pick}) RETURNING {columns}"
        )
        # On PostgreSQL the lease also asks, in the same statement, whether an earlier unpublished row is held
        # elsewhere (`others_before`): the statement's snapshot shows the rows it leases as they were, so they are left
        # out by position; rows this relay leased before show its lease.
        self.lease_checked_sql = None
        if self.postgres:
            width = len(LeasedRow.__dataclass_fields__)
            names = ", ".join(f"c{i}" for i in range(width))
            self.lease_checked_sql = (
                f"WITH leased ({names}) AS ({self.lease_sql}) SELECT {names}, EXISTS (SELECT 1 FROM {self.table} "
                f"WHERE {self._held_elsewhere('(SELECT max(c0) FROM leased)')} "
                f"AND NOT ({position} = ANY(ARRAY(SELECT c0 FROM leased)))) FROM leased"
            )
        # The single active relay reads rows as they are (leases of relays in the other mode are respected), but for
        # those it has in flight (sent, or confirmed and being marked): the server leaves them out, not the driver.
        self.read_sql = (
            f"SELECT {columns} FROM {self.table} WHERE {self.pending} AND (claimed_until IS NULL OR claimed_until < %s) "
            f"AND NOT ({position} = ANY(%s::bigint[])) ORDER BY {position} LIMIT %s"
        )

    def read(self, cursor: Any, now: datetime, limit: int, in_flight: Iterable[int]) -> list[LeasedRow]:
        cursor.execute(self.read_sql, [self._time(now), _int_array(in_flight), limit])
        return [LeasedRow(*row) for row in cursor.fetchall()]

    # Leases and marks are written without waiting for the disk on PostgreSQL (`unsynced`). Safe for them alone: a
    # lease lost in a database crash is a lease never taken, and a mark lost publishes the event once more, which
    # consumers absorb, as after a relay crash between confirm and mark. Events themselves are always written durably.

    def together(self) -> Any:
        """Around statements of the relay that need a transaction together: elsewhere than on PostgreSQL, where each
        is a transaction of its own (see `unsynced`)."""
        return nullcontext() if self.postgres else transaction.atomic()

    def _time(self, value: datetime) -> Any:
        return self.ops.adapt_datetimefield_value(value)

    def _in(self, positions: list[int]) -> tuple[str, list[Any]]:
        if self.postgres:
            return f"{self.position} = ANY(%s::bigint[])", [_int_array(positions)]
        return f"{self.position} IN ({', '.join(['%s'] * len(positions))})", list(positions)

    def lease(self, cursor: Any, relay_id: str, now: datetime, until: datetime, limit: int) -> list[LeasedRow]:
        if self.returning:
            cursor.execute(self.lease_sql, [relay_id, self._time(until), self._time(now), limit])
            rows = [LeasedRow(*row) for row in cursor.fetchall()]
            rows.sort(key=lambda row: row.position)  # RETURNING promises no order
            return rows
        cursor.execute(self.pick, [self._time(now), limit])
        positions = [row[0] for row in cursor.fetchall()]
        if not positions:
            return []
        where, params = self._in(positions)
        cursor.execute(
            f"UPDATE {self.table} SET claimed_by = %s, claimed_until = %s WHERE {where}", [relay_id, self._time(until), *params]
        )
        cursor.execute(f"SELECT {self.columns} FROM {self.table} WHERE {where} ORDER BY {self.position}", params)
        return [LeasedRow(*row) for row in cursor.fetchall()]

    def lease_checked(
        self, cursor: Any, relay_id: str, now: datetime, until: datetime, limit: int
    ) -> tuple[list[LeasedRow], bool | None]:
        """`lease()` and whether `others_before()` its last row: on PostgreSQL in one statement; elsewhere the lease
        alone, and None for the check, left to ask (only when it matters)."""
        if self.lease_checked_sql is None:
            return self.lease(cursor, relay_id, now, until, limit), None
        at = self._time(now)
        cursor.execute(self.lease_checked_sql, [relay_id, self._time(until), at, limit, relay_id, at])
        fetched = cursor.fetchall()
        rows = sorted((LeasedRow(*row[:-1]) for row in fetched), key=lambda row: row.position)
        return rows, bool(fetched) and fetched[0][-1]

    def _held_elsewhere(self, before: str = "%s") -> str:
        # Unpublished rows before the position `before` (a parameter, or SQL) that are not leased to this relay (and so
        # not in its claim or in flight).
        return (
            f"{self.pending} AND {self.position} < {before} "
            f"AND NOT (claimed_by = %s AND claimed_until IS NOT NULL AND claimed_until >= %s)"
        )

    def others_before(self, cursor: Any, position: int, relay_id: str, now: datetime) -> bool:
        cursor.execute(
            f"SELECT 1 FROM {self.table} WHERE {self._held_elsewhere()} LIMIT 1", [position, relay_id, self._time(now)]
        )
        return cursor.fetchone() is not None

    def first_of_subjects_held_elsewhere(
        self, cursor: Any, position: int, relay_id: str, now: datetime, subjects: set[str]
    ) -> dict[str, int]:
        listed = sorted(subjects)
        cursor.execute(
            f"SELECT subject, MIN({self.position}) FROM {self.table} WHERE {self._held_elsewhere()} "
            f"AND subject IN ({', '.join(['%s'] * len(listed))}) GROUP BY subject",
            [position, relay_id, self._time(now), *listed],
        )
        return dict(cursor.fetchall())

    def unlease(self, cursor: Any, positions: list[int]) -> None:
        where, params = self._in(positions)
        cursor.execute(f"UPDATE {self.table} SET claimed_by = '', claimed_until = NULL WHERE {where}", params)

    def mark_published(self, cursor: Any, positions: list[int], at: datetime) -> None:
        step = 5000 if self.postgres else 500  # SQLite: parameters per statement
        for start in range(0, len(positions), step):
            where, params = self._in(positions[start : start + step])
            cursor.execute(
                f"UPDATE {self.table} SET published_at = %s, claimed_until = NULL{self.unsynced} WHERE {where}",
                [self._time(at), *params],
            )


def _int_array(values: Iterable[int]) -> str:
    """A PostgreSQL array literal of integers (for `%s::bigint[]`): a tenth of the time the driver takes to adapt a list."""
    return "{" + ",".join(map(str, values)) + "}"


def _sqlite_version(conn: Any) -> tuple[int, ...]:
    return conn.Database.sqlite_version_info


class ConfirmingPublisher:
    """Publishes on one channel in confirm mode, many messages in flight at once."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.outages = outage_errors(connection)
        self.channel = connection.channel()
        self.channel.confirm_select()
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)
        self._next_tag = 1
        self._pending: dict[int, int] = {}
        self._acked: list[int] = []
        self._nacked: list[int] = []

    def _settle(self, delivery_tag: int, multiple: bool, into: list[int]) -> None:
        if not multiple:
            position = self._pending.pop(delivery_tag, None)
            if position is not None:
                into.append(position)
            return
        while self._pending:
            tag = next(iter(self._pending))
            if tag > delivery_tag:
                break
            into.append(self._pending.pop(tag))

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, self._acked)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, self._nacked)

    def send(self, messages: Iterable[Outgoing]) -> dict[int, str]:
        """Publish without waiting for confirms; returns {position: reason} of messages that cannot be encoded.

        The frames of all messages are encoded into one buffer (`events.frames`) and written with
        one call per `WRITE_BYTES`; a message that cannot be encoded adds nothing to the buffer.
        """
        if not self.channel.is_open:
            raise amqp.RecoverableConnectionError("the relay's channel is closed")
        connection = self.channel.connection
        channel_id, frame_max = self.channel.channel_id, connection.frame_max
        unsendable: dict[int, str] = {}
        buffer: list[bytes] = []
        positions: list[int] = []
        size = 0
        for message in messages:
            try:
                frames = encode_publish(
                    channel_id,
                    frame_max,
                    topology.EVENTS,
                    message.routing_key,
                    message.body,
                    message.properties,
                    message.encoded,
                )
            except Exception as exc:
                unsendable[message.position] = f"cannot be encoded as an AMQP message: {type(exc).__name__}: {exc}"
                continue
            buffer.append(frames)
            positions.append(message.position)
            size += len(frames)
            if size >= WRITE_BYTES:
                self._write(connection, buffer, positions)
                buffer, positions, size = [], [], 0
        if buffer:
            self._write(connection, buffer, positions)
        return unsendable

    def _write(self, connection: Any, frames: list[bytes], positions: list[int]) -> None:
        connection.transport.write(b"".join(frames))
        connection.bytes_sent += len(positions)  # what py-amqp counts for its heartbeats: frames written
        for position in positions:
            self._pending[self._next_tag] = position
            self._next_tag += 1

    def wait(self, max_in_flight: int, timeout: float) -> tuple[list[int], list[int]]:
        """Read confirms until at most `max_in_flight` remain; return (acked, nacked) positions since last time."""
        deadline = time.monotonic() + timeout
        while len(self._pending) > max_in_flight:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConfirmTimeout(f"{len(self._pending)} messages unconfirmed after {timeout}s")
            try:
                self.connection.drain_events(timeout=remaining)
            except TimeoutError:
                continue
        settled = self._acked, self._nacked
        self._acked, self._nacked = [], []
        return settled


class MarkWriter:
    """Marks confirmed rows published on a thread and database connection of its own, so that the relay's thread leases
    and sends the next batches meanwhile (PostgreSQL, where a mark costs as much as a read).

    `submit` queues positions and returns at once, unless `MAX_WAITING` are already queued: then it waits until the
    writer has taken them, so marks never fall further behind. The writer takes everything queued in one go, once
    `LINGER_ROWS` are queued or `LINGER_SECONDS` after the first (at once when asked to drain or close): a mark is off
    the events' path, and at a trickle of small batches one statement then marks many of them. A mark
    that fails is tried once more on a new connection (a mark is idempotent, and a session may have been dropped while
    the relay was idle). `collect` returns the positions whose marks have committed since it was last called.
    `submit`, `collect` and `drain` raise, in the relay's thread, the error a mark failed with twice (its rows stay
    unpublished, leased or in flight, and are published again). `close` writes what is still queued (drops it if an
    error is pending: the relay is handling one), stops the thread and closes its connection.
    """

    MAX_WAITING = 5000
    LINGER_ROWS = 500
    LINGER_SECONDS = 0.02

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: list[int] = []
        self._first_waiting = 0.0  # when the first of `_waiting` was queued (monotonic)
        self._draining = 0
        self._writing = False
        self._marked: list[int] = []
        self._error: BaseException | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="relay-marks", daemon=True)
        self._thread.start()

    def submit(self, positions: list[int]) -> None:
        with self._cond:
            while len(self._waiting) >= self.MAX_WAITING and self._error is None:
                self._cond.wait()
            self._raise()
            if not self._waiting:
                self._first_waiting = time.monotonic()
            self._waiting += positions
            self._cond.notify_all()

    def drain(self) -> None:
        """Wait until every queued mark has committed (or raise the error one failed with)."""
        with self._cond:
            self._draining += 1
            self._cond.notify_all()
            try:
                while (self._waiting or self._writing) and self._error is None:
                    self._cond.wait()
            finally:
                self._draining -= 1
            self._raise()

    def collect(self) -> list[int]:
        with self._cond:
            self._raise()
            marked, self._marked = self._marked, []
            return marked

    def close(self) -> list[int]:
        """Stop (see the class); returns the positions marked and not yet collected."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        if self._error is not None:
            logger.warning("marks not written (the rows are published again): %s", self._error)
            self._error = None
        marked, self._marked = self._marked, []
        return marked

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._closing and not (self._waiting and self._draining):
                        if not self._waiting:
                            self._cond.wait()
                            continue
                        left = self._first_waiting + self.LINGER_SECONDS - time.monotonic()
                        if len(self._waiting) >= self.LINGER_ROWS or left <= 0:
                            break
                        self._cond.wait(left)
                    if not self._waiting or (self._closing and self._error is not None):
                        return
                    positions, self._waiting = self._waiting, []
                    self._writing = True
                    self._cond.notify_all()  # a `submit` waiting for room goes on
                try:
                    _write_marks_retrying(positions)
                except BaseException as exc:  # reported to the relay's thread, whatever it is
                    with self._cond:
                        self._error, self._writing = exc, False
                        self._cond.notify_all()
                    if not isinstance(exc, Exception):
                        raise
                    continue
                with self._cond:
                    self._marked += positions
                    self._writing = False
                    self._cond.notify_all()
        finally:
            connections.close_all()  # this thread's


def _write_marks_retrying(positions: list[int]) -> None:
    try:
        _write_marks(positions)
    except DatabaseError as exc:
        logger.info("writing marks failed (%s); once more on a new connection", exc)
        _close_quietly()
        try:
            _write_marks(positions)
        except DatabaseError:
            _close_quietly()  # the next mark starts on a new connection
            raise


def _write_marks(positions: list[int]) -> None:
    sql = LogStatements.of(db_connection)
    with sql.together(), db_connection.cursor() as cursor:
        sql.mark_published(cursor, positions, datetime.now(UTC))


def _close_quietly() -> None:
    try:
        db_connection.close()
    except DatabaseError:
        pass


class Relay:
    def __init__(
        self,
        *,
        broker_url: str | None = None,
        batch_size: int | None = None,
        poll_seconds: float | None = None,
        max_message_bytes: int | None = None,
        wake_address: str | None = None,
        confirm_timeout: float = 30.0,
        lease_seconds: float = 60.0,
        single_active: bool | None = None,
        linger_seconds: float | None = None,
    ) -> None:
        self.broker_url = broker_url or settings.CELERY_BROKER_URL
        self.batch_size = batch_size or settings.EVENTS_RELAY_BATCH_SIZE
        self.poll_seconds = poll_seconds if poll_seconds is not None else settings.EVENTS_RELAY_POLL_SECONDS
        self.max_message_bytes = max_message_bytes or settings.EVENTS_MAX_MESSAGE_BYTES
        self.wake_address = settings.EVENTS_RELAY_WAKE_ADDRESS if wake_address is None else wake_address
        self.linger = max(settings.EVENTS_RELAY_LINGER_MS / 1000 if linger_seconds is None else linger_seconds, 0.0)
        self._since = time.monotonic()  # when the relay last stopped waiting
        self.confirm_timeout = confirm_timeout
        # Well beyond a batch's claim and confirm time; should a slow relay still lose a lease, the
        # event is published twice, which consumers absorb.
        self.lease = timedelta(seconds=max(lease_seconds, 0.0))
        self.relay_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stop_event = threading.Event()
        self.single_active = settings.EVENTS_RELAY_SINGLE_ACTIVE if single_active is None else single_active
        self._lock_session: Any = None  # the database session holding the single-active lock
        self._in_flight: set[int] = set()  # single active: sent, not yet marked or given back
        self._marks: MarkWriter | None = None  # while `marks_alongside()`

    # -- hooks
    def on_confirmed(self, positions: list[int]) -> None:
        """Called after the broker confirmed `positions`, before they are marked published."""

    # -- batches
    def relay_batch(self, publisher: ConfirmingPublisher) -> int:
        """Claim one batch, publish it, wait for its confirms and mark it. Returns the rows claimed."""
        claimed, _ = self._claim_and_send(publisher)
        self._settle(publisher, 0)
        return claimed

    def pump(self, publisher: ConfirmingPublisher) -> int:
        """Relay until the log is drained, one batch in flight while the next is claimed and sent."""
        total = 0
        while not self.stop_event.is_set():
            claimed, sent = self._claim_and_send(publisher)
            total += claimed
            if claimed < self.batch_size:
                break
            self._settle(publisher, sent)  # everything before the batch just sent is confirmed and marked
        self._settle(publisher, 0)
        return total

    def _settle(self, publisher: ConfirmingPublisher, max_in_flight: int) -> None:
        acked, nacked = publisher.wait(max_in_flight, self.confirm_timeout)
        if nacked:
            logger.warning("broker refused %d events; they stay unpublished and are retried", len(nacked))
            self._release(nacked)
        if acked:
            self.on_confirmed(acked)
            self._mark_published(acked)
            metrics.relay_confirmed(acked)

    def _claim_and_send(self, publisher: ConfirmingPublisher) -> tuple[int, int]:
        """Lease a batch and publish it without waiting; returns (rows claimed, messages sent)."""
        rows = self._claim()
        outgoing: list[Outgoing] = []
        set_aside: dict[int, str] = {}
        spans = telemetry.RelaySpans()
        for row in rows:
            try:
                message = spans.start(self._message(row))
            except Exception as exc:
                set_aside[row.position] = f"cannot be made into a message: {type(exc).__name__}: {exc}"
                continue
            if len(message.body) > self.max_message_bytes:
                set_aside[row.position] = (
                    f"message of {len(message.body)} bytes exceeds EVENTS_MAX_MESSAGE_BYTES={self.max_message_bytes}"
                )
                continue
            outgoing.append(message)
        metrics.relay_sent(outgoing)
        unsendable = publisher.send(outgoing)
        set_aside.update(unsendable)
        spans.end(set_aside)
        for position, reason in set_aside.items():
            logger.error("event #%s set aside, not published: %s", position, reason)
            StoredEvent.objects.filter(position=position).update(rejected_reason=reason, claimed_until=None)
            self._in_flight.discard(position)
        return len(rows), len(outgoing) - len(unsendable)

    @staticmethod
    def _message(row: LeasedRow) -> Outgoing:
        """The message of a leased row: as `publish()` stored it, or (rows older than its columns, or written around
        it) encoded now from the row's columns."""
        routing_key = f"{row.topic}.{row.event_type}"
        if row.body is not None and row.header is not None:
            if not telemetry.active():
                return Outgoing(row.position, routing_key, bytes(row.body), None, bytes(row.header))
            # The publish span rewrites the traceparent header: the properties as a dict, from the stored bytes.
            return Outgoing(row.position, routing_key, bytes(row.body), decode_properties(bytes(row.header)))
        columns = row.columns()
        envelope = envelope_of(columns)  # holds the timestamp to the envelope's rule, whatever the stored body says
        body = envelope.to_json() if row.body is None else bytes(row.body)
        return Outgoing(row.position, f"{row.topic}.{row.event_type}", body, envelope.amqp_properties())

    def _claim(self) -> list[LeasedRow]:
        """Lease the next unpublished rows to this relay, in a short transaction of their own.

        One statement leases and reads the batch (`UPDATE … RETURNING`, on PostgreSQL over rows
        picked `FOR UPDATE SKIP LOCKED`) and checks whether an earlier unpublished row is held
        elsewhere (on SQLite a second statement does); only when one is are rows of its subjects given
        back, by a statement of their own. On PostgreSQL each statement is a transaction of its own (the
        check reads committed rows either way, and a lease committed before its rows are given back only
        delays them until it runs out); elsewhere they share one.
        """
        self._collect_marks()
        sql = LogStatements.of(db_connection)
        now = datetime.now(UTC)
        if self.single_active and sql.postgres:
            return self._read_as_the_active_relay(sql, now)
        with sql.together(), db_connection.cursor() as cursor:
            rows, held = sql.lease_checked(cursor, self.relay_id, now, now + self.lease, self.batch_size)
            if rows:
                rows = self._in_subject_order(cursor, sql, rows, now, held)
        return rows

    def _read_as_the_active_relay(self, sql: LogStatements, now: datetime) -> list[LeasedRow]:
        """Single active: the next unpublished rows not in flight, one statement, no lease; none while standing by."""
        if not self._holds_lock():
            return []
        with db_connection.cursor() as cursor:
            rows = sql.read(cursor, now, self.batch_size, self._in_flight)
        rows = [row for row in rows if row.position not in self._in_flight]
        self._in_flight.update(row.position for row in rows)
        return rows

    def _holds_lock(self) -> bool:
        """Whether this relay is the active one: it holds the advisory lock on its current database session."""
        db_connection.ensure_connection()
        session = db_connection.connection
        if session is self._lock_session:
            return True
        with db_connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [SINGLE_ACTIVE_LOCK])
            held = bool(cursor.fetchone()[0])
        if held:
            self._lock_session = session
            self._in_flight.clear()  # nothing is in flight on a session that is new
            logger.info("relay %s is the active relay", self.relay_id)
        elif self._lock_session is not False:
            logger.info("relay %s stands by: another relay is active", self.relay_id)
            self._lock_session = False
        return held

    def _in_subject_order(
        self, cursor: Any, sql: LogStatements, rows: list[LeasedRow], now: datetime, held: bool | None = None
    ) -> list[LeasedRow]:
        """Give back rows whose subject has an earlier unpublished row that this relay is not sending (`held`: whether
        one is before the last row, when the lease has asked already)."""
        subjects = {row.subject for row in rows if row.subject}
        if not subjects:
            return rows
        # Earlier unpublished rows neither in this claim nor in flight on this relay (both leased to it now).
        if held is None:
            held = sql.others_before(cursor, rows[-1].position, self.relay_id, now)
        if not held:
            return rows  # the usual case: no other relay holds anything earlier
        blocked = sql.first_of_subjects_held_elsewhere(cursor, rows[-1].position, self.relay_id, now, subjects)
        kept = [row for row in rows if row.subject not in blocked or row.position < blocked[row.subject]]
        if len(kept) < len(rows):
            sql.unlease(cursor, sorted({row.position for row in rows} - {row.position for row in kept}))
        return kept

    @contextmanager
    def marks_alongside(self) -> Iterator[None]:
        """Within it, marks are written by a `MarkWriter` while the next batch goes out, on PostgreSQL and outside a
        transaction (a second connection would not see the rows of one); elsewhere, or nested, marks are written in
        line. On leaving, the last mark has committed (or failed: the error is raised unless one already is)."""
        if self._marks is not None or not LogStatements.of(db_connection).postgres or db_connection.in_atomic_block:
            yield
            return
        self._marks = MarkWriter()
        try:
            yield
            self._marks.drain()
        finally:
            marks, self._marks = self._marks, None
            self._in_flight.difference_update(marks.close())

    def _collect_marks(self) -> None:
        """Forget in-flight rows whose marks have committed: called before a read, so that the read sees them marked."""
        if self._marks is not None:
            self._in_flight.difference_update(self._marks.collect())

    def _mark_published(self, positions: list[int]) -> None:
        if self._marks is not None:
            self._marks.submit(positions)
            return
        _write_marks(positions)
        self._in_flight.difference_update(positions)

    def _release(self, positions: Iterable[int] | None = None) -> None:
        """Give leased, unpublished rows back (all of this relay's when `positions` is None)."""
        if positions is None:
            self._in_flight.clear()
        else:
            positions = list(positions)
            self._in_flight.difference_update(positions)
        rows = StoredEvent.objects.filter(claimed_by=self.relay_id, published_at__isnull=True)
        if positions is not None:
            rows = rows.filter(position__in=list(positions))
        rows.update(claimed_by="", claimed_until=None)

    # -- the loop
    def run(self) -> None:
        """Relay until `stop()`; survives broker and database outages."""
        logs.clear(service="relay")
        wake = self._bind_wake_socket()
        retryable = outage_errors(Connection(self.broker_url))
        backoff = 0.5
        try:
            while not self.stop_event.is_set():
                try:
                    with (
                        self.marks_alongside(),
                        Connection(self.broker_url, transport_options=self._transport_options()) as connection,
                    ):
                        connection.ensure_connection(max_retries=1)
                        topology.declare(connection)
                        publisher = ConfirmingPublisher(connection)
                        logger.info("relay connected to %s", connection.as_uri())
                        backoff = 0.5
                        while not self.stop_event.is_set():
                            self.pump(publisher)
                            self._wait(wake)
                except retryable as exc:
                    logger.warning("relay interrupted (%s: %s); retrying in %.1fs", type(exc).__name__, exc, backoff)
                    close_old_connections()
                    self._release_quietly()
                    self.stop_event.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
        finally:
            self._release_quietly()
            if wake is not None:
                wake.close()
            logger.info("relay stopped")

    def stop(self) -> None:
        self.stop_event.set()

    def _release_quietly(self) -> None:
        try:
            self._release()
        except DatabaseError as exc:
            logger.warning("could not give back leased events (they are freed when the lease ends): %s", exc)

    def _transport_options(self) -> dict[str, Any]:
        return {
            # Names the connection in the RabbitMQ management UI.
            "client_properties": {"connection_name": f"relay@{socket.gethostname()}"},
            # A broker that stops reading (a frozen node, a stalled link) must not hold the relay for
            # ever: a write it does not take within the confirm timeout, or a handshake it does not
            # answer, is an outage (the relay reconnects, to the next address when several are given).
            "write_timeout": self.confirm_timeout,
            "read_timeout": min(self.confirm_timeout, 10.0),
        }

    def _bind_wake_socket(self) -> socket.socket | None:
        if not self.wake_address:
            return None
        host, _, port = self.wake_address.rpartition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, int(port)))
        except (OSError, ValueError) as exc:
            logger.warning("cannot listen for nudges on %s (%s); polling every %ss", self.wake_address, exc, self.poll_seconds)
            sock.close()
            return None
        sock.setblocking(False)
        return sock

    def _wait(self, wake: socket.socket | None) -> None:
        """Until the next batch is due: at once when nudged on a quiet bus, after `linger` when the nudges that came in
        while the last batch was out say events are flowing, at the latest after `poll_seconds`."""
        if wake is None:
            self.stop_event.wait(self.poll_seconds)
        elif nudges := self._nudges(wake, 0.0):
            if self._flowing(nudges, time.monotonic() - self._since):
                self._linger()
                self._nudges(wake, 0.0)  # the commits of the linger: the next lease takes them
        else:
            self._nudges(wake, self.poll_seconds)
        self._since = time.monotonic()

    def _flowing(self, nudges: int, seconds: float) -> bool:
        """Whether `nudges` commits in the `seconds` the last batch was out make at least one more due within the
        linger (a single commit says nothing of a rate)."""
        return self.linger > 0 and nudges >= 2 and nudges * self.linger >= seconds

    def _linger(self) -> None:
        self.stop_event.wait(self.linger)

    @staticmethod
    def _nudges(wake: socket.socket, timeout: float) -> int:
        """The nudges that arrive within `timeout` (0: have arrived), all taken: 0 if none came."""
        readable, _, _ = select.select([wake], [], [], timeout)
        taken = 0
        if readable:
            try:
                while True:
                    wake.recv(64)
                    taken += 1
            except BlockingIOError:
                pass
        return taken
