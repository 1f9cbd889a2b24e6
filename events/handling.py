"""Running handlers: exactly one effect per (event, handler), retries, dead letters.

Guarantees:
- A handler runs in one database transaction together with its inbox row (eventId, handler): a
  duplicate delivery finds the row and does nothing, and a failed run leaves no trace.
- The events of one task commit together, each in a savepoint of its own, so each is handled,
  retried and dead-lettered on its own. If the batch cannot commit (the database went away) or
  the task runs out of time, the batch is sent again and nothing of it counts as an attempt; a
  task that spent a quarter of its soft time limit hands its remaining events on to a new task.
- The task is acknowledged late, requeued if its worker dies or it hits its hard time limit.
- A failed event is sent again after an exponential backoff with jitter, through the broker
  (Celery's native delayed delivery on quorum queues), so no worker holds it meanwhile.
- When its attempts are exhausted the event, the handler, the error and its traceback are stored
  as a `DeadLetter` and the message goes to `<service>.events.dlq`.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from typing import Any

from celery import shared_task
from celery.exceptions import Reject, SoftTimeLimitExceeded
from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, close_old_connections, connection, transaction

from events import deadletters, subscriptions, tracing
from events.envelope import Envelope
from events.models import InboxEntry
from events.subscriptions import Event, Subscription
from events.topology import task_queue

logger = logging.getLogger(__name__)


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff after the `attempt`-th failure (1-based), jittered over its upper half."""
    ceiling = min(settings.EVENTS_RETRY_BACKOFF_MAX_SECONDS, settings.EVENTS_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def max_attempts(subscription: Subscription) -> int:
    return subscription.max_attempts or settings.EVENTS_HANDLER_MAX_ATTEMPTS


def run_once(subscription: Subscription, envelope: Envelope) -> bool:
    """Run the handler unless it already ran for this event. True if it ran now."""
    data = subscription.event_type.validate(envelope.data, envelope.event_version)
    with transaction.atomic():
        try:
            with transaction.atomic():
                InboxEntry.objects.create(event_id=envelope.event_id, handler=subscription.name, event_type=envelope.event_type)
        except IntegrityError:
            return False  # already handled (or being handled by a concurrent duplicate that committed first)
        with tracing.handling(envelope):
            subscription(Event(envelope=envelope, data=data))
        if transaction.get_rollback():
            raise RuntimeError("the handler swallowed a database error, so its work cannot be committed")
    return True


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


def database_down(exc: BaseException) -> bool:
    """Whether `exc` means the database connection is gone, rather than a handler's mistake."""
    if not isinstance(exc, (OperationalError, InterfaceError, BatchAborted)):
        return False
    try:
        return connection.connection is None or not connection.is_usable()
    except Exception:
        return True


@shared_task(
    name="events.handle",
    acks_late=True,
    reject_on_worker_lost=True,
    acks_on_timeout=False,  # killed at its hard time limit: the broker delivers it again
    ignore_result=True,
)
def handle_events(handler: str, items: list[dict[str, Any]], service: str = "unknown") -> dict[str, int]:
    # As around a request: a broken or expired connection is replaced, a healthy one reused.
    close_old_connections()
    try:
        return _handle_events(handler, items, service)
    except SoftTimeLimitExceeded:
        # Out of time after the commit: run the task again; what was committed is deduplicated.
        raise Reject("soft time limit after the commit", requeue=True) from None
    finally:
        close_old_connections()


def _handle_events(handler: str, items: list[dict[str, Any]], service: str) -> dict[str, int]:
    subscription = subscriptions.get(handler)
    batch = [(Envelope.from_dict(e["event"], traceparent=e.get("traceparent")), int(e.get("attempt", 1))) for e in items]
    counts: Counter[str] = Counter()
    failures: list[Failure] = []
    rest: list[dict[str, Any]] = []
    if subscription is None:
        failures = [Failure(env, attempt, f"no handler named {handler!r} on this worker", "") for env, attempt in batch]
    else:
        try:
            counts, failures, rest = _handle_batch(subscription, batch, items)
        except Exception as exc:
            # Nothing of the batch was committed.
            if database_down(exc):
                logger.warning("%s: database unavailable (%r); the batch of %d is sent again", handler, exc, len(batch))
                redeliveries = max(int(entry.get("redeliveries", 0)) for entry in items) + 1
                again = [{**entry, "redeliveries": redeliveries} for entry in items]
                _redeliver(handler, again, service, countdown=backoff_seconds(min(redeliveries, 8)))
                return {"redelivered": len(items)}
            if len(items) > 1:
                # Found only at commit (a deferred constraint, say): each event again on its own.
                logger.warning("%s: batch of %d not committed (%r); each event is sent again alone", handler, len(batch), exc)
                for entry in items:
                    _redeliver(handler, [entry], service)
                return {"split": len(items)}
            counts = Counter()
            failures = [Failure(batch[0][0], batch[0][1], f"{type(exc).__name__}: {exc}", traceback.format_exc())]
    if rest:
        _redeliver(handler, rest, service)
        counts["handed on"] += len(rest)
    for failure in failures:
        counts[_on_failure(subscription, handler, service, failure)] += 1
    return dict(counts)


def _handle_batch(
    subscription: Subscription, batch: list[tuple[Envelope, int]], items: list[dict[str, Any]]
) -> tuple[Counter[str], list[Failure], list[dict[str, Any]]]:
    """Run the batch in one transaction, a savepoint per event; stop early when the time budget is spent."""
    counts: Counter[str] = Counter()
    failures: list[Failure] = []
    deadline = time.monotonic() + time_budget()
    with transaction.atomic():
        for index, (envelope, attempt) in enumerate(batch):
            if index and time.monotonic() > deadline:
                return counts, failures, items[index:]
            try:
                counts["handled" if run_once(subscription, envelope) else "duplicates"] += 1
            except Exception as exc:
                if database_down(exc):
                    raise
                failures.append(Failure(envelope, attempt, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
                if isinstance(exc, SoftTimeLimitExceeded):
                    return counts, failures, items[index + 1 :]  # commit what is done, hand on the rest
            if transaction.get_rollback():
                raise BatchAborted("the transaction was marked for rollback")
    return counts, failures, []


def _redeliver(handler: str, items: list[dict[str, Any]], service: str, countdown: float | None = None) -> None:
    """Send (part of) a batch again as a new task; if even that fails, give the task back to the broker."""
    try:
        _send(handler, service, items, countdown)
    except Exception as exc:
        logger.exception("could not send %d events of %s again; requeueing the task", len(items), handler)
        raise Reject(f"could not redeliver: {exc}", requeue=True) from None


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
            reason = f"{reason} (retry could not be scheduled: {type(dispatch_exc).__name__}: {dispatch_exc})"
    else:
        logger.error("%s gave up on %s after %d attempts: %s", handler, envelope.event_id, attempt, reason)
    try:
        deadletters.record_handler_failure(
            service=subscription.service if subscription else service,
            handler=handler,
            envelope=envelope,
            reason=reason,
            tb=failure.traceback,
            attempts=attempt,
        )
    except Exception:
        # The dead letter cannot be stored now (database down?): the same attempt comes back later.
        logger.exception("could not store the dead letter of %s; sending it again later", envelope.event_id)
        _redeliver(handler, [item(envelope, attempt)], service, countdown=backoff_seconds(3))
        return "redelivered"
    return "dead"
