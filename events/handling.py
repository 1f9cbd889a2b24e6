"""Running handlers: exactly one effect per (event, handler), retries, dead letters.

Guarantees:
- A handler runs in one database transaction together with its inbox row (source, eventId,
  handler): a duplicate delivery finds the row and does nothing, and a failed run leaves no trace.
- The events of one task commit together, each in a savepoint of its own, so each is handled,
  retried and dead-lettered on its own. On PostgreSQL the task's inbox rows are written first, in
  one statement (in the task's transaction, not the savepoints: a savepoint that writes nothing
  takes no subtransaction id), and the row of an event that fails or is handed on is removed
  again before the commit. A task spends a quarter of its soft time limit at most on
  its batch and hands the rest on to a new task.
- A task never acks an event it did not handle: every event of a task ends handled, retried, sent
  again or dead-lettered, whatever fails. An event the task cannot even read is a dead letter
  with the reason.
- A lost database connection is recognised where it happens and never counts as an attempt: the
  batch, of which nothing committed, is sent again after a backoff.
- The task is acknowledged late and given back to the broker if its worker dies (a crash,
  `os._exit`, the OOM killer, the hard time limit). A task that comes back unfinished is split
  into one task per event (events already in the inbox are dropped), and an event that came back
  unfinished `EVENTS_HANDLER_MAX_WORKER_LOSSES` times in a row is a dead letter saying so; so a
  poison event cannot loop, and the healthy events batched with it are handled. Sending an event
  again for any other reason (a retry, a hand-on, a database outage) starts that count over.
- A dead letter that cannot be stored now (the database is down) comes back later marked as
  such: its handler does not run again meanwhile.
- A failed event is sent again after an exponential backoff with jitter, through the broker
  (Celery's native delayed delivery on quorum queues), so no worker holds it meanwhile.
- When its attempts are exhausted the event, the handler, the error and its traceback are stored
  as a `DeadLetter` (one open dead letter per event and handler) and the message goes to
  `<service>.events.dlq`.
- Only when neither the broker nor the database takes a failed event is the task itself given
  back; the retries it already sent may then run twice, which the inbox and the one open dead
  letter absorb.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Reject, SoftTimeLimitExceeded
from django.conf import settings
from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
    transaction,
)

from events import deadletters, rowsets, subscriptions, telemetry, tracing
from events.envelope import Envelope
from events.models import InboxEntry
from events.observability import logs, runs
from events.subscriptions import Event, Subscription
from events.topology import task_queue

logger = logging.getLogger(__name__)


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff after the `attempt`-th failure (1-based), jittered over its upper half."""
    ceiling = min(settings.EVENTS_RETRY_BACKOFF_MAX_SECONDS, settings.EVENTS_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def max_attempts(subscription: Subscription) -> int:
    return subscription.max_attempts or settings.EVENTS_HANDLER_MAX_ATTEMPTS


def run_once(subscription: Subscription, envelope: Envelope, attempt: int = 1, claimed: InboxEntry | None = None) -> bool:
    """Run the handler unless it already ran for this event. True if it ran now. `claimed`: the event's inbox row,
    written already in the caller's transaction (`claim_all`); the caller removes it if this raises."""
    data = subscription.event_type.validate(envelope.data, envelope.event_version)
    with transaction.atomic():
        inbox = claimed or _claim_one(subscription, envelope, attempt)
        if inbox is None:
            return False  # already handled (or being handled by a concurrent duplicate that committed first)
        with (
            tracing.handling(envelope),
            telemetry.processing(subscription.name, envelope, subscription.event_type.routing_key),
            runs.timed(subscription, envelope, inbox),
        ):
            subscription(Event(envelope=envelope, data=data))
        if transaction.get_rollback():
            raise RuntimeError("the handler swallowed a database error, so its work cannot be committed")
    return True


# The inbox's unique constraint (inbox_event_handler_unique): what makes a run a duplicate.
_INBOX_KEY = ("event_id", "source", "handler")


def _claim_one(subscription: Subscription, envelope: Envelope, attempt: int) -> InboxEntry | None:
    """Write the event's inbox row; None if the handler has handled it. On PostgreSQL one statement that leaves out a
    row already there (`ON CONFLICT DO NOTHING`, waiting for a concurrent duplicate's outcome); elsewhere the insert,
    in a savepoint of its own that a duplicate rolls back."""
    row = InboxEntry.of(subscription.name, envelope, attempt)
    if connection.vendor == "postgresql":
        return next(iter(rowsets.insert_new([row], _INBOX_KEY)), None)
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        return None
    return row


def claim_all(subscription: Subscription, batch: list[tuple[Envelope, int]]) -> dict[tuple[str, str], InboxEntry] | None:
    """PostgreSQL: the inbox rows of the events of `batch` the handler has not handled yet, written in one statement,
    by event: one round trip for the batch instead of one per event. None elsewhere (or for one event): each event
    claims its own row in its savepoint. Rows are written in the batch's order, so that the inbox's ids follow the
    order the events run in. Two tasks holding some of the same events (a duplicate delivery) in different orders
    can deadlock here: PostgreSQL ends one of them, whose events are then sent again one task each."""
    if connection.vendor != "postgresql" or len(batch) < 2:
        return None
    rows: dict[tuple[str, str], InboxEntry] = {}
    for envelope, attempt in batch:
        rows.setdefault((envelope.source, envelope.event_id), InboxEntry.of(subscription.name, envelope, attempt))
    new = rowsets.insert_new(list(rows.values()), _INBOX_KEY)
    return {(row.source, row.event_id): row for row in new}


def unclaim(rows: list[InboxEntry]) -> None:
    """Remove inbox rows `claim_all` wrote for events that were not handled after all (failed, or handed on)."""
    if rows:
        InboxEntry.objects.filter(pk__in=[row.pk for row in rows]).delete()


def run_many(subscription: Subscription, batch: list[tuple[Envelope, int]]) -> tuple[int, int]:
    """Run a batch handler (`batch=True`) once over the events of `batch` it has not handled yet, together with
    their inbox rows, in a savepoint. Returns (handled, duplicates). If the handler raises, nothing of the
    batch was written and the exception propagates: the caller runs the events one at a time instead."""
    validate = subscription.event_type.validate
    read = [(envelope, attempt, validate(envelope.data, envelope.event_version)) for envelope, attempt in batch]
    with transaction.atomic():
        fresh, inboxes = _claim_inbox(subscription, read)
        if fresh:
            envelopes = [envelope for envelope, _, _ in fresh]
            with (
                telemetry.processing_batch(subscription.name, envelopes, subscription.event_type.routing_key),
                runs.timed_batch(subscription, envelopes, inboxes),
            ):
                subscription.run_batch([Event(envelope=envelope, data=data) for envelope, _, data in fresh])
            if transaction.get_rollback():
                raise RuntimeError("the handler swallowed a database error, so its work cannot be committed")
    return len(fresh), len(batch) - len(fresh)


def _claim_inbox(
    subscription: Subscription, read: list[tuple[Envelope, int, Any]]
) -> tuple[list[tuple[Envelope, int, Any]], list[InboxEntry]]:
    """Write the inbox rows of the events of `read` the handler has not handled yet; those events, and their rows
    (with their ids: the batch's durations are written to them at its end)."""
    seen: set[tuple[str, str]] = set()
    once = []
    for envelope, attempt, data in read:
        if (envelope.source, envelope.event_id) not in seen:
            seen.add((envelope.source, envelope.event_id))
            once.append((envelope, attempt, data))
    if connection.vendor == "postgresql":
        # One statement: rows already there (handled before, or by another worker meanwhile) are left out.
        rows = [InboxEntry.of(subscription.name, envelope, attempt) for envelope, attempt, _ in once]
        new = {(row.source, row.event_id) for row in rowsets.insert_new(rows, _INBOX_KEY)}
        fresh = [(e, a, d) for e, a, d in once if (e.source, e.event_id) in new]
        return fresh, [row for row in rows if (row.source, row.event_id) in new]
    handled = set(
        InboxEntry.objects.filter(handler=subscription.name, event_id__in={e.event_id for e, _, _ in once}).values_list(
            "source", "event_id"
        )
    )
    fresh = [(e, a, d) for e, a, d in once if (e.source, e.event_id) not in handled]
    # A duplicate committed meanwhile by another worker fails this insert: the events then run one at a time.
    inboxes = [InboxEntry.of(subscription.name, envelope, attempt) for envelope, attempt, _ in fresh]
    rowsets.insert(inboxes, pks=True)
    return fresh, inboxes


def raise_unless_events_can_run_alone(exc: BaseException) -> None:
    """After a batch handler's list failed (`run_many`): raise what forbids running its events one at a time in the
    same transaction (the database is gone, or the transaction can no longer commit); return otherwise."""
    if connection_lost(exc):
        raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
    if transaction.get_rollback():
        raise BatchAborted("the transaction was marked for rollback (a savepoint could not be rolled back)") from exc


def item(envelope: Envelope, attempt: int = 1) -> dict[str, Any]:
    """One event as it travels in a handler task."""
    return {"event": envelope.to_dict(), "traceparent": envelope.traceparent, "attempt": attempt}


def dispatch(subscription: Subscription, items: list[dict[str, Any]], countdown: float | None = None) -> None:
    _send(subscription.name, subscription.service, items, countdown)


def _send(handler: str, service: str, items: list[dict[str, Any]], countdown: float | None = None) -> None:
    if countdown is not None:
        countdown = max(1, round(countdown))  # the broker's delayed delivery counts whole seconds
    handle_events.apply_async(args=(handler, items), kwargs={"service": service}, queue=task_queue(service), countdown=countdown)


@dataclass(frozen=True)
class Failure:
    envelope: Envelope
    attempt: int
    reason: str
    traceback: str


class BatchAborted(Exception):
    """The batch's transaction was marked for rollback: nothing of it can commit."""


def time_budget() -> float:
    """Seconds a task spends on its batch before it hands the rest on (its transaction stays short)."""
    return min(settings.CELERY_TASK_SOFT_TIME_LIMIT / 4, settings.EVENTS_HANDLER_BATCH_SECONDS)


# SQL states of a connection that is gone: class 08 (connection exception) and the server shutting down.
CONNECTION_LOST_STATES = ("08", "57P01", "57P02", "57P03")


class DatabaseUnavailable(Exception):
    """The database connection was lost while the batch ran: nothing of it committed."""


def connection_lost(exc: BaseException) -> bool:
    """Whether `exc`, just raised, means the database connection is gone rather than a handler's mistake.

    Asked where the error happens, before any rollback or reconnect can hide the loss: a connection
    error (by its SQL state, or one without a state) and a default connection that no longer works.
    An error from another database, the default one still working, is the handler's.
    """
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (OperationalError, InterfaceError, BatchAborted)):
            sqlstate = getattr(error.__cause__, "sqlstate", None)
            if sqlstate and not sqlstate.startswith(CONNECTION_LOST_STATES):
                return False
            try:
                return connection.connection is None or not connection.is_usable()
            except Exception:
                return True
        error = error.__cause__ or error.__context__
    return False


@shared_task(
    name="events.handle",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    acks_on_timeout=False,  # killed at its hard time limit: the broker delivers it again
    ignore_result=True,
)
def handle_events(self: Task, handler: str, items: list[dict[str, Any]], service: str = "unknown") -> dict[str, int]:
    refresh_connections()
    logs.clear(service=service, handler=handler)
    try:
        if self.request.delivery_info and self.request.delivery_info.get("redelivered"):
            return _came_back(handler, items, service)
        return _handle_events(handler, items, service)
    except SoftTimeLimitExceeded:
        # Out of time after the commit: send the task again (what was committed is deduplicated),
        # as a new message, so that this does not count as an unfinished delivery.
        _redeliver(handler, [_fresh(entry) for entry in _entries(items)], service)
        return {"handed on": len(_entries(items))}
    finally:
        refresh_connections()


# How often a worker thread checks its database connections when nothing went wrong with them.
CONNECTION_CHECK_SECONDS = 1.0
_checked = threading.local()


def refresh_connections() -> None:
    """As around a request, a broken or expired connection is replaced and a healthy one reused; but a thread that
    runs a handler task or an ordered batch every few milliseconds has its connections checked (a query of
    their own) at most once every `CONNECTION_CHECK_SECONDS`, and at once after a database error or once a
    connection is older than `CONN_MAX_AGE` (with 0, after every task, as before). One that breaks in between
    fails its batch as a database outage, which is run again without counting an attempt."""
    now = time.monotonic()
    due = any(
        conn.errors_occurred or (conn.close_at is not None and now >= conn.close_at)
        for conn in connections.all(initialized_only=True)
        if conn.connection is not None
    )
    if due or now - getattr(_checked, "at", -CONNECTION_CHECK_SECONDS) >= CONNECTION_CHECK_SECONDS:
        close_old_connections()
        _checked.at = now


def _count(entry: dict[str, Any], key: str, default: int = 0) -> int:
    try:
        return int(entry.get(key, default))
    except (TypeError, ValueError):
        return default


def _fresh(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry sent again for a reason other than an unfinished delivery: its count of those starts over."""
    return {key: value for key, value in entry.items() if key != "lost"}


def _came_back(handler: str, items: Any, service: str) -> dict[str, int]:
    """The broker delivers this task again: its last delivery did not finish (its worker died, most likely).

    Its events are sent again one task each, counting the unfinished delivery; one that came back
    `EVENTS_HANDLER_MAX_WORKER_LOSSES` times in a row is a dead letter. Events already handled
    (their inbox row exists) are dropped instead.
    """
    entries = _not_handled_yet(handler, [{**entry, "lost": _count(entry, "lost") + 1} for entry in _entries(items)])
    if len(entries) > 1:
        logger.warning("%s: a batch of %d came back unfinished; each event is sent again on its own", handler, len(entries))
        for entry in entries:
            _redeliver(handler, [entry], service)
        return {"split": len(entries)}
    if not entries:
        return {"duplicates": 1}
    entry = entries[0]
    if entry["lost"] < settings.EVENTS_HANDLER_MAX_WORKER_LOSSES:
        _redeliver(handler, [entry], service)
        return {"redelivered": 1}
    readable, unreadable = _read([entry])
    counts = _dead_letter_unreadable(handler, service, unreadable)
    for _, envelope, attempt in readable:
        reason = (
            f"came back unfinished {entry['lost']} times in a row: the worker handling it died each time "
            "(a crash, os._exit, the OOM killer or the hard time limit), or the broker took it back"
        )
        counts[_give_up(subscriptions.get(handler), handler, service, Failure(envelope, attempt, reason, ""), entry)] += 1
    return dict(counts)


def _not_handled_yet(handler: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`entries` less the events the handler has an inbox row for; all of them if the database cannot say."""
    readable, _ = _read(entries)
    if not readable:
        return entries
    try:
        done = set(
            InboxEntry.objects.filter(
                handler=handler, event_id__in={envelope.event_id for _, envelope, _ in readable}
            ).values_list("source", "event_id")
        )
    except DatabaseError:
        return entries
    handled = {id(entry) for entry, envelope, _ in readable if (envelope.source, envelope.event_id) in done}
    return [entry for entry in entries if id(entry) not in handled]


def _entries(items: Any) -> list[dict[str, Any]]:
    if isinstance(items, list):
        return [entry if isinstance(entry, dict) else {"unreadable": entry} for entry in items]
    return [{"unreadable": items}]


def _read(items: Any) -> tuple[list[tuple[dict[str, Any], Envelope, int]], list[tuple[dict[str, Any], str]]]:
    """The task's events as (entry, envelope, attempt), and the entries it cannot read with the reason."""
    readable: list[tuple[dict[str, Any], Envelope, int]] = []
    unreadable: list[tuple[dict[str, Any], str]] = []
    for entry in _entries(items):
        try:
            envelope = Envelope.from_dict(entry["event"], traceparent=entry.get("traceparent"))
            readable.append((entry, envelope, _count(entry, "attempt", 1)))
        except Exception as exc:
            unreadable.append((entry, f"the handler task cannot read this event: {type(exc).__name__}: {str(exc)[:500]}"))
    return readable, unreadable


def _dead_letter_unreadable(handler: str, service: str, unreadable: list[tuple[dict[str, Any], str]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for entry, reason in unreadable:
        event = entry.get("event", entry)
        event_id = event.get("eventId") if isinstance(event, dict) else None
        logger.error("%s: dead-lettering an event it cannot read: %s", handler, reason)
        try:
            deadletters.record_unreadable(
                service=service,
                reason=reason,
                body=json.dumps(event, default=str).encode("utf-8", "backslashreplace"),
                content_type="application/json",
                headers={},
                routing_key=task_queue(service).name,
                handler=handler,
                event_id=event_id if isinstance(event_id, str) else "",
            )
        except Exception:
            logger.exception("could not store the dead letter of an unreadable event; sending it again later")
            _redeliver(handler, [entry], service, countdown=backoff_seconds(3))
            counts["redelivered"] += 1
        else:
            counts["dead"] += 1
    return counts


def _handle_events(handler: str, items: Any, service: str) -> dict[str, int]:
    subscription = subscriptions.get(handler)
    read, unreadable = _read(items)
    counts = _dead_letter_unreadable(handler, service, unreadable)
    # Events whose dead letter could not be stored earlier: store it now, without running the handler again.
    for entry, envelope, attempt in [r for r in read if isinstance(r[0].get("give_up"), dict)]:
        given_up = entry["give_up"]
        failure = Failure(envelope, attempt, str(given_up.get("reason", "")), str(given_up.get("traceback", "")))
        counts[_give_up(subscription, handler, service, failure, entry)] += 1
    read = [r for r in read if not isinstance(r[0].get("give_up"), dict)]
    if not read:
        return dict(counts)
    readable = [entry for entry, _, _ in read]
    batch = [(envelope, attempt) for _, envelope, attempt in read]
    failures: list[Failure] = []
    rest: list[dict[str, Any]] = []
    if subscription is None:
        failures = [Failure(env, attempt, f"no handler named {handler!r} on this worker", "") for env, attempt in batch]
    else:
        try:
            handled, failures, rest = _handle_batch(subscription, batch, readable)
            counts.update(handled)
        except DatabaseUnavailable as exc:
            logger.warning("%s: database unavailable (%s); the batch of %d is sent again", handler, exc, len(batch))
            redeliveries = max(_count(entry, "redeliveries") for entry in readable) + 1
            again = [{**_fresh(entry), "redeliveries": redeliveries} for entry in readable]
            _redeliver(handler, again, service, countdown=backoff_seconds(min(redeliveries, 8)))
            counts["redelivered"] += len(readable)
            return dict(counts)
        except Exception as exc:
            # Nothing of the batch was committed.
            if len(readable) > 1:
                # Found only at commit (a deferred constraint, say): each event again on its own.
                logger.warning("%s: batch of %d not committed (%r); each event is sent again alone", handler, len(batch), exc)
                for entry in readable:
                    _redeliver(handler, [_fresh(entry)], service)
                counts["split"] += len(readable)
                return dict(counts)
            failures = [Failure(batch[0][0], batch[0][1], f"{type(exc).__name__}: {exc}", traceback.format_exc())]
    if rest:
        _redeliver(handler, [_fresh(entry) for entry in rest], service)
        counts["handed on"] += len(rest)
    for failure in failures:
        logs.bind_event(failure.envelope)
        outcome = _on_failure(subscription, handler, service, failure)
        runs.failed(handler, service, failure, outcome)
        counts[outcome] += 1
    return dict(counts)


def _handle_batch(
    subscription: Subscription, batch: list[tuple[Envelope, int]], items: list[dict[str, Any]]
) -> tuple[Counter[str], list[Failure], list[dict[str, Any]]]:
    """Run the batch in one transaction, a savepoint per event; stop early when the time budget is spent."""
    counts: Counter[str] = Counter()
    failures: list[Failure] = []
    deadline = time.monotonic() + time_budget()
    try:
        with runs.batch(), transaction.atomic():
            if subscription.batch and len(batch) > 1:
                try:
                    handled, duplicates = run_many(subscription, batch)
                    counts.update({"handled": handled, "duplicates": duplicates})
                    return counts, failures, []
                except Exception as exc:
                    raise_unless_events_can_run_alone(exc)
                    logger.info("%s: its batch of %d failed (%r); each event runs on its own", subscription.name, len(batch), exc)
            claims = claim_all(subscription, batch)
            for index, (envelope, attempt) in enumerate(batch):
                if index and time.monotonic() > deadline:
                    unclaim(_claimed(claims, batch[index:]))
                    return counts, failures, items[index:]
                claimed = None
                if claims is not None:
                    claimed = claims.pop((envelope.source, envelope.event_id), None)
                    if claimed is None:
                        counts["duplicates"] += 1  # handled before, or earlier in this batch
                        continue
                try:
                    counts["handled" if run_once(subscription, envelope, attempt, claimed) else "duplicates"] += 1
                except Exception as exc:
                    if connection_lost(exc):
                        raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
                    soft_limit = isinstance(exc, SoftTimeLimitExceeded)
                    if soft_limit and (claims is not None or transaction.get_rollback()):
                        # With claims, the signal may have struck after the handler's savepoint was released, its work
                        # kept: whether to remove its inbox row cannot be told. Or the database was busy and nothing
                        # can commit. Either way nothing of the batch commits: its events are sent again one task each.
                        raise BatchAborted("the soft time limit struck in the middle of a batch") from exc
                    failures.append(Failure(envelope, attempt, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
                    if soft_limit:
                        return counts, failures, items[index + 1 :]  # commit what is done, hand on the rest
                    if claimed is not None and not transaction.get_rollback():
                        unclaim([claimed])
                if transaction.get_rollback():
                    raise BatchAborted("the transaction was marked for rollback (a savepoint could not be rolled back)")
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        if connection_lost(exc):  # at commit, or the aborted batch's rollback
            raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
        raise
    return counts, failures, []


def _claimed(claims: dict[tuple[str, str], InboxEntry] | None, rest: list[tuple[Envelope, int]]) -> list[InboxEntry]:
    """The rows `claim_all` wrote for the events of `rest`, taken out of `claims`."""
    if claims is None:
        return []
    return [row for envelope, _ in rest if (row := claims.pop((envelope.source, envelope.event_id), None)) is not None]


def _redeliver(handler: str, items: list[dict[str, Any]], service: str, countdown: float | None = None) -> None:
    """Send (part of) a batch again as a new task, waiting out a short broker hiccup; if even that fails, give the task back."""
    for wait in (0.5, 1.0, 2.0, 4.0, None):
        try:
            _send(handler, service, items, countdown)
            return
        except Exception as exc:
            if wait is None:
                logger.exception("could not send %d events of %s again; requeueing the task", len(items), handler)
                raise Reject(f"could not redeliver: {exc}", requeue=True) from None
            logger.warning("could not send %d events of %s again (%s); trying again in %.1fs", len(items), handler, exc, wait)
            time.sleep(wait)


def _on_failure(subscription: Subscription | None, handler: str, service: str, failure: Failure) -> str:
    """Retry later or give up; either way the event stays somewhere durable. Returns the outcome."""
    envelope, attempt, reason = failure.envelope, failure.attempt, failure.reason
    if subscription is not None and attempt < max_attempts(subscription):
        delay = backoff_seconds(attempt)
        logger.warning("%s failed on %s (attempt %d), retrying in %.1fs: %s", handler, envelope.event_id, attempt, delay, reason)
        try:
            dispatch(subscription, [item(envelope, attempt + 1)], countdown=delay)
            return "retried"
        except Exception as dispatch_exc:
            logger.exception("could not schedule a retry of %s", envelope.event_id)
            failure = Failure(
                envelope,
                attempt,
                f"{reason} (retry could not be scheduled: {type(dispatch_exc).__name__}: {dispatch_exc})",
                failure.traceback,
            )
    else:
        logger.error("%s gave up on %s after %d attempts: %s", handler, envelope.event_id, attempt, reason)
    return _give_up(subscription, handler, service, failure, item(envelope, attempt))


def _give_up(subscription: Subscription | None, handler: str, service: str, failure: Failure, entry: dict[str, Any]) -> str:
    """Store the dead letter (and its DLQ copy). If the database cannot take it now, the event comes back later
    marked to be dead-lettered, so its handler does not run again meanwhile."""
    try:
        deadletters.record_handler_failure(
            service=subscription.service if subscription else service,
            handler=handler,
            envelope=failure.envelope,
            reason=failure.reason,
            tb=failure.traceback,
            attempts=failure.attempt,
        )
    except Exception as exc:
        log = logger.warning if connection_lost(exc) else logger.exception
        log("could not store the dead letter of %s (%s); trying again later", failure.envelope.event_id, exc)
        again = {**_fresh(entry), "give_up": {"reason": failure.reason, "traceback": failure.traceback}}
        _redeliver(handler, [again], service, countdown=backoff_seconds(3))
        return "redelivered"
    return "dead"
