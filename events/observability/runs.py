"""What each handler run leaves for the trace view, at little cost on the hot path.

- A successful run: its inbox row (written anyway) carries the attempt number; how long the
  handler ran is written for the whole batch of a handler task in one `UPDATE … FROM` the rows,
  once the task's transaction has committed (`batch()`): one statement per task (per 400 events),
  not one per event, in a transaction of its own that does not wait for the disk on PostgreSQL. A
  crash in between, or a failure of that statement (logged), leaves those runs without a duration
  and changes nothing else.
- A failed attempt: one `HandlerFailure` row (when, how long, the error, retried or
  dead-lettered), written after the handler's transaction rolled back. Failing to write it is
  logged and changes nothing else.
- Every run, successful or not, counts in the metrics and the handler latency histogram. A batch
  handler's run (`batch=True`) counts once per event, each credited an equal share of its time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from events.observability import logs, metrics

logger = logging.getLogger(__name__)

_service: ContextVar[str | None] = ContextVar("events_handler_service", default=None)
_batch: ContextVar[list[tuple[Any, float]] | None] = ContextVar("events_handler_batch", default=None)
# Timing of failed runs, until their outcome is known: (handler, source, eventId) -> (started, ms).
_failed: dict[tuple[str, str, str], tuple[datetime, float]] = {}


@contextmanager
def batch() -> Iterator[None]:
    """Around a handler task's transaction: once it has committed, write the durations of the runs that succeeded."""
    token = _batch.set([])
    try:
        yield
        _write_durations(_batch.get() or [])
    finally:
        _batch.reset(token)


def _write_durations(done: list[tuple[Any, float]]) -> None:
    from django.db import connection

    if not done:
        return
    try:
        if connection.in_atomic_block:  # still inside a caller's transaction (a test's): in a savepoint of it
            if transaction.get_rollback():
                return
            with transaction.atomic():
                _update_all(done)
        else:
            _update_all(done)
    except Exception:
        logger.warning("could not record how long %d handler runs took", len(done), exc_info=True)


def _update_all(done: list[tuple[Any, float]]) -> None:
    for start in range(0, len(done), 400):
        _update_durations([(entry.pk, round(ms, 3)) for entry, ms in done[start : start + 400]])


def _update_durations(rows: list[tuple[int, float]]) -> None:
    """One statement for the rows: `UPDATE … FROM` the rows as JSON on PostgreSQL (events/rowsets.py), from a `VALUES`
    list on SQLite (from 3.33). The ORM's `bulk_update` writes a CASE with a branch per row, which costs more
    than the handlers it measures."""
    from django.db import connection

    from events import rowsets
    from events.models import InboxEntry

    if connection.vendor == "postgresql":
        rowsets.update([InboxEntry(pk=pk, duration_ms=ms) for pk, ms in rows], ["duration_ms"], unsynced=True)
        return
    quote = connection.ops.quote_name
    values = ", ".join(["(CAST(%s AS INTEGER), CAST(%s AS REAL))"] * len(rows))
    table = quote(InboxEntry._meta.db_table)
    sql = f"WITH v(id, ms) AS (VALUES {values}) UPDATE {table} SET {quote('duration_ms')} = v.ms FROM v WHERE {table}.id = v.id"
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])


@contextmanager
def timed(subscription: Any, envelope: Any, inbox: Any) -> Iterator[None]:
    """Around one handler run."""
    log_context = logs.bind_event(envelope, service=subscription.service, handler=subscription.name)
    service = _service.set(subscription.service)
    started = datetime.now(UTC)
    start = time.perf_counter()
    ok = False
    try:
        yield
        ok = True
    finally:
        _service.reset(service)
        logs.reset(log_context)
        seconds = time.perf_counter() - start
        metrics.handler_ran(subscription.service, subscription.name, envelope.event_type, seconds, ok)
        if ok:
            done = _batch.get()
            if done is not None:
                done.append((inbox, seconds * 1000))
        else:
            if len(_failed) > 10_000:
                _failed.clear()
            _failed[(subscription.name, envelope.source, envelope.event_id)] = (started, seconds * 1000)


@contextmanager
def timed_batch(subscription: Any, envelopes: list[Any], inboxes: list[Any]) -> Iterator[None]:
    """Around one run of a batch handler over `envelopes`: each event is credited an equal share of its time.
    A failed batch run records nothing: its events run again one at a time, and those runs are timed."""
    log_context = logs.bind(service=subscription.service, handler=subscription.name, batch=len(envelopes))
    service = _service.set(subscription.service)
    start = time.perf_counter()
    try:
        yield
    finally:
        _service.reset(service)
        logs.reset(log_context)
    share = (time.perf_counter() - start) / max(1, len(envelopes))
    for envelope in envelopes:
        metrics.handler_ran(subscription.service, subscription.name, envelope.event_type, share, True)
    done = _batch.get()
    if done is not None:
        done.extend((inbox, share * 1000) for inbox in inboxes)


def publisher() -> dict[str, str]:
    """Metadata of an event published now: the service whose handler is running, if one is."""
    service = _service.get()
    return {"service": service} if service else {}


OUTCOMES = {"retried": "retried", "dead": "dead"}


def failed(handler: str, service: str, failure: Any, outcome: str) -> None:
    """A failed attempt and what became of it (`retried`, `dead`, or sent again for another reason)."""
    from events.models import HandlerFailure

    envelope = failure.envelope
    started, ms = _failed.pop((handler, envelope.source, envelope.event_id), (None, None))
    try:
        HandlerFailure.objects.create(
            started_at=started,
            duration_ms=None if ms is None else round(ms, 3),
            service=service[:100],
            handler=handler[:300],
            event_id=envelope.event_id[:200],
            source=envelope.source[:200],
            event_type=envelope.event_type[:100],
            attempt=failure.attempt,
            error=failure.reason.replace("\x00", "\\u0000"),
            outcome=OUTCOMES.get(outcome, "other"),
        )
    except Exception:
        logger.warning("could not record the failed attempt %d of %s", failure.attempt, handler, exc_info=True)
