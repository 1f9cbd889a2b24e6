"""The dead-letter store: events that could not be handled, with why; and replaying them.

Every message in a `<service>.events.dlq` has a dead letter here with its reason, so the admin
and the broker agree:
- consumer-stage dead letters (unreadable, unknown type or version, no handler, unconvertible)
  keep the raw message; the consumer rejects the message itself to `<service>.events.dlq`;
- handler-stage dead letters (retries exhausted, or the worker died handling it) keep the event as
  the handler received it, and a copy of it is published to `<service>.events.dlq` too. There is
  one open handler dead letter per (event, handler), however often the event comes back;
- broker-stage dead letters: messages RabbitMQ itself dead-lettered from `<service>.events` (a
  delivery limit reached, a length limit or TTL set by a policy), read from the `x-death` header
  of their copy in `<service>.events.dlq.audit`.

Replay, once the cause is fixed: a dead letter that names a handler is handed to that one handler
again, with fresh attempts; any other is put back on `<service>.events` as it came, for the
consumer to read again with the code it runs now.

A handler gives up on an event once: its dead letter comes with an inbox row marked
`dead_lettered`, so the event coming back (a redelivery, a second publish) does not run the
handler again until the dead letter is replayed. For an ordered handler, that keeps a given-up
event from running after later events of its subject.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models.functions import Greatest

from events import topology
from events.envelope import Envelope
from events.models import DeadLetter, InboxEntry
from events.observability import console, metrics

logger = logging.getLogger(__name__)


BASE64 = "base64:"
# Publishing from here waits out a short broker hiccup, not an outage.
RETRY_POLICY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2}


def _printable(body: bytes) -> str:
    """The body as text if it is UTF-8 a database can store, else base64 (marked so)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return BASE64 + base64.b64encode(body).decode()
    return BASE64 + base64.b64encode(body).decode() if text.startswith(BASE64) or "\x00" in text else text


def _raw(text: str) -> bytes:
    return base64.b64decode(text[len(BASE64) :]) if text.startswith(BASE64) else text.encode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return _printable(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    return str(value)


def _jsonable_headers(headers: dict[str, Any] | None) -> dict[str, Any]:
    return {str(key): _jsonable(value) for key, value in (headers or {}).items()}


# The broker's record of earlier dead-letterings; a replayed message starts without it.
BROKER_HEADERS = (
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
)


def _clean(value: Any) -> Any:
    """`value` with what no database stores made visible instead: NUL as `\\u0000`, a lone surrogate as its escape.

    A dead letter must be storable whatever its event holds, or the event would have nowhere to go.
    """
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "\\u0000")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_clean(str(key)): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def _short(value: str | None, limit: int) -> str:
    return _clean(value or "")[:limit]


def _envelope_fields(envelope: Envelope | None, event_id: str = "") -> dict[str, Any]:
    if envelope is None:
        return {"event_id": _short(event_id, 200)}
    return {
        "event_id": _short(envelope.event_id, 200),
        "source": _short(envelope.source, 200),
        "event_type": _short(envelope.event_type, 100),
        "event_version": _short(envelope.event_version, 20),
        "envelope": _clean(envelope.to_dict()),
        "traceparent": _short(envelope.traceparent, 100),
    }


def record_unreadable(
    *,
    service: str,
    reason: str,
    body: bytes,
    content_type: str | None,
    headers: dict[str, Any] | None,
    routing_key: str,
    envelope: Envelope | None = None,
    handler: str = "",
    event_id: str = "",
    stage: str = DeadLetter.Stage.CONSUMER,
) -> DeadLetter:
    """Store a message that could not be used as it came; whatever it holds, the row can be stored."""
    letter = DeadLetter.objects.create(
        fingerprint=console.fingerprint(service=service, handler=handler, stage=stage, reason=reason),
        stage=stage,
        service=_short(service, 100),
        handler=_short(handler, 300),
        **_envelope_fields(envelope, event_id),
        reason=_clean(reason),
        raw_body=_printable(body),
        content_type=_short(content_type, 200),
        headers=_clean(_jsonable_headers(headers)),
        routing_key=_short(routing_key, 300),
    )
    metrics.dead_lettered(letter.service, letter.event_type, stage)
    return letter


def record_handler_failure(*, service: str, handler: str, envelope: Envelope, reason: str, tb: str, attempts: int) -> DeadLetter:
    """Store the handler's dead letter and copy the event to the DLQ; an open one for the same event is updated instead.

    With the dead letter, the handler's inbox row for the event is written, marked `dead_lettered`: the handler has
    given up on it, so if it comes again (redelivered after a lost ack, or published twice) it is a duplicate and
    does not run, out of order, after later events of its subject. Replaying the dead letter removes the row."""
    fields = _envelope_fields(envelope)
    open_letter = DeadLetter.objects.filter(
        stage=DeadLetter.Stage.HANDLER,
        status=DeadLetter.Status.OPEN,
        service=service,
        handler=handler,
        event_id=fields["event_id"],
        source=fields["source"],
    )
    try:
        with transaction.atomic():
            dead = DeadLetter.objects.create(
                fingerprint=console.fingerprint(service=service, handler=handler, stage=DeadLetter.Stage.HANDLER, reason=reason),
                stage=DeadLetter.Stage.HANDLER,
                service=_short(service, 100),
                handler=_short(handler, 300),
                **fields,
                reason=_clean(reason),
                traceback=_clean(tb),
                attempts=attempts,
                routing_key=_short(f"{service}.events", 300),
            )
            _mark_given_up(handler, envelope, attempts)
    except IntegrityError:
        # The event came back after it was dead-lettered (a duplicate delivery): its copy is in the DLQ already.
        with transaction.atomic():
            open_letter.update(
                reason=_clean(reason),
                traceback=_clean(tb),
                attempts=Greatest("attempts", attempts),
                fingerprint=console.fingerprint(service=service, handler=handler, stage=DeadLetter.Stage.HANDLER, reason=reason),
            )
            _mark_given_up(handler, envelope, attempts)
        return open_letter.get()
    metrics.dead_lettered(dead.service, dead.event_type, DeadLetter.Stage.HANDLER)
    try:
        _publish_to_dlq(service, envelope, reason, handler)
    except Exception:
        logger.exception(
            "dead letter %s is stored but could not be copied to %s", dead.pk, topology.dead_letter_queue_name(service)
        )
    return dead


def _mark_given_up(handler: str, envelope: Envelope, attempts: int) -> None:
    """The handler's inbox row for the event, as given up on; left as it is if the handler has one already."""
    InboxEntry.objects.bulk_create([InboxEntry.of(handler, envelope, attempts, dead_lettered=True)], ignore_conflicts=True)


def _unmark_given_up(dead_letter: DeadLetter) -> None:
    InboxEntry.objects.filter(
        handler=dead_letter.handler, event_id=dead_letter.event_id, source=dead_letter.source, dead_lettered=True
    ).delete()


@dataclass(frozen=True)
class BrokerDeath:
    reason: str  # as RabbitMQ names it: delivery_limit, maxlen, expired, rejected
    queue: str
    routing_key: str
    text: str  # the reason as the dead letter shows it


def describe_x_death(headers: dict[str, Any] | None) -> BrokerDeath | None:
    """The broker's latest dead-lettering of a message, from its `x-death` header (newest first); None if it has none."""
    deaths = (headers or {}).get("x-death")
    if not deaths or not isinstance(deaths, list) or not isinstance(deaths[0], dict):
        return None
    latest = deaths[0]
    reason = _text(latest.get("reason")) or "unknown"
    queue = _text(latest.get("queue")) or "?"
    keys = latest.get("routing-keys") or []
    explanations = {
        "delivery_limit": f"delivered more than {topology.DELIVERY_LIMIT} times without being acknowledged "
        "(a consumer that kept crashing or restarting before it could ack)",
        "maxlen": "the queue was over its length limit (a policy's max-length)",
        "expired": "it expired in the queue (a message or queue TTL)",
        "rejected": "a consumer rejected it",
    }
    text = f"RabbitMQ dead-lettered it from {queue}: {reason}, {explanations.get(reason, 'see its x-death header')}"
    return BrokerDeath(reason=reason, queue=queue, routing_key=_text(keys[0]) if keys else "", text=text)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value) if value is not None else ""


def _publish_to_dlq(service: str, envelope: Envelope, reason: str, handler: str) -> None:
    properties = envelope.amqp_properties()
    headers = {**properties.pop("application_headers"), "x-handler": handler, "x-reason": reason[:1000]}
    _publish(
        envelope.to_json(),
        exchange=topology.dead_letter_exchange,
        routing_key=topology.dead_letter_routing_key(service),
        declare=[topology.dead_letter_queue(service)],
        headers=headers,
        **properties,
    )


def _publish(body: bytes, **options: Any) -> None:
    """Publish one message with the app's producer, waiting out a short broker hiccup."""
    from project.celery import app

    with app.producer_or_acquire() as producer:
        producer.publish(body, retry=True, retry_policy=RETRY_POLICY, **options)


class NotReplayable(Exception):
    pass


def dead_letter_replay(*, dead_letter: DeadLetter) -> None:
    """Deliver the event of `dead_letter` again (see the module docstring), and mark it replayed.

    Marked, and its handler's given-up inbox row removed, in the transaction that sends it, the message
    last: if it cannot be sent, nothing changed. The handler's run waits for that commit (for the inbox row
    and the open dead letter it would write); a crash between sending and committing leaves the dead letter
    open, and the run a duplicate of the given-up row: replaying again delivers it."""
    from events import handling, subscriptions

    if dead_letter.handler and dead_letter.envelope is not None:
        subscription = subscriptions.get(dead_letter.handler)
        if subscription is None:
            raise NotReplayable(f"no handler named {dead_letter.handler!r} is registered")
        envelope = Envelope.from_dict(dead_letter.envelope, traceparent=dead_letter.traceparent or None)
        if dead_letter.stage == DeadLetter.Stage.CONSUMER:
            # Not converted yet (e.g. a converter was missing): convert now, or fail with the reason.
            envelope = envelope.with_data(
                subscription.event_type.convert(envelope.data, envelope.event_version, subscription.version),
                subscription.version,
            )
        with transaction.atomic():
            _mark_replayed(dead_letter)
            _unmark_given_up(dead_letter)
            handling.dispatch(subscription, [handling.item(envelope)])
    elif dead_letter.stage in (DeadLetter.Stage.CONSUMER, DeadLetter.Stage.BROKER) and dead_letter.raw_body:
        with transaction.atomic():
            _mark_replayed(dead_letter)
            _republish_raw(dead_letter)
    else:
        raise NotReplayable("this dead letter keeps neither a handler's event nor the message it came as")


def _mark_replayed(dead_letter: DeadLetter) -> None:
    """Mark it replayed, unless it was replayed already (by another replay meanwhile, say): its event went back
    then, and if it failed again its new dead letter is the one to replay (this one's given-up row is gone)."""
    marked = (
        DeadLetter.objects.filter(pk=dead_letter.pk)
        .exclude(status=DeadLetter.Status.REPLAYED)
        .update(status=DeadLetter.Status.REPLAYED, replayed_at=datetime.now(UTC))
    )
    if not marked:
        raise NotReplayable("it was replayed already; if its event failed again, replay its newer dead letter")


def _republish_raw(dead_letter: DeadLetter) -> None:
    _publish(
        _raw(dead_letter.raw_body),
        exchange="",
        routing_key=topology.event_queue_name(dead_letter.service),
        content_type=dead_letter.content_type or "application/json",  # what the consumer assumed
        content_encoding="binary",
        headers={k: v for k, v in dead_letter.headers.items() if k not in BROKER_HEADERS},
        delivery_mode=2,
        serializer=None,
    )
