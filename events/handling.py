"""Running handlers: exactly one effect per (event, handler), retries, dead letters.

Guarantees:
- A handler runs in one database transaction together with its inbox row (eventId, handler): a
  duplicate delivery finds the row and does nothing, and a failed run leaves no trace.
- The task is acknowledged late and rejected if its worker dies, so a crash re-runs it.
- The events of one task are committed together, each in a savepoint of its own: each is
  handled, retried and dead-lettered on its own, and if the commit fails the task is redelivered.
- A failed event is re-sent after an exponential backoff with full jitter, through the broker
  (Celery's native delayed delivery on quorum queues), capped below RabbitMQ's consumer_timeout.
- When its attempts are exhausted the event, the handler, the error and its traceback are stored
  as a `DeadLetter` and the message goes to `<service>.events.dlq`.
"""

from __future__ import annotations

import logging
import random
import traceback
from collections import Counter
from dataclasses import dataclass
from typing import Any

from celery import shared_task
from celery.exceptions import Reject
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction

from events import deadletters, subscriptions, tracing
from events.envelope import Envelope
from events.models import InboxEntry
from events.subscriptions import Event, Subscription

logger = logging.getLogger(__name__)


def backoff_seconds(attempt: int) -> float:
    """Full-jitter exponential backoff after the `attempt`-th failure (1-based)."""
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
    return True


def item(envelope: Envelope, attempt: int = 1) -> dict[str, Any]:
    """One event as it travels in a handler task."""
    return {"event": envelope.to_dict(), "traceparent": envelope.traceparent, "attempt": attempt}


def dispatch(subscription: Subscription, items: list[dict[str, Any]], countdown: float | None = None) -> None:
    from events.topology import task_queue

    if countdown is not None:
        countdown = max(1, round(countdown))  # the broker's delayed delivery counts whole seconds
    handle_events.apply_async(
        args=(subscription.name, items),
        kwargs={"service": subscription.service},
        queue=task_queue(subscription.service),
        countdown=countdown,
    )


@dataclass(frozen=True)
class Failure:
    envelope: Envelope
    attempt: int
    reason: str
    traceback: str


@shared_task(name="events.handle", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def handle_events(handler: str, items: list[dict[str, Any]], service: str = "unknown") -> dict[str, int]:
    subscription = subscriptions.get(handler)
    batch = [(Envelope.from_dict(e["event"], traceparent=e.get("traceparent")), int(e.get("attempt", 1))) for e in items]
    counts: Counter[str] = Counter()
    failures: list[Failure] = []
    if subscription is None:
        failures = [Failure(env, attempt, f"no handler named {handler!r} on this worker", "") for env, attempt in batch]
    else:
        try:
            # One commit for the batch, a savepoint per event: a failing event takes only its own
            # effects back with it.
            with transaction.atomic():
                for envelope, attempt in batch:
                    try:
                        counts["handled" if run_once(subscription, envelope) else "duplicates"] += 1
                    except Exception as exc:
                        failures.append(Failure(envelope, attempt, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        except DatabaseError as exc:
            # The commit failed, so nothing of the batch happened: let the broker deliver it again.
            logger.exception("%s could not commit a batch of %d events", handler, len(batch))
            raise Reject(f"batch not committed: {exc}", requeue=True) from None
    for failure in failures:
        counts[_on_failure(subscription, handler, service, failure)] += 1
    return dict(counts)


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
        # Neither retry nor dead letter could be stored: hand the task back to the broker.
        logger.exception("could not store the dead letter of %s; requeueing the task", envelope.event_id)
        raise Reject(reason, requeue=True) from None
    return "dead"
