"""The dead-letter store: events that could not be handled, with why; and replaying them.

Consumer-stage dead letters (unreadable, unknown type or version, no handler, unconvertible) keep
the raw message; the broker moves the message itself to `<service>.events.dlq`. Handler-stage
dead letters (retries exhausted) keep the event as the handler received it, and a copy of it is
published to `<service>.events.dlq` too.

Replay, once the cause is fixed: a dead letter that names a handler is handed to that one handler
again, with fresh attempts; any other is put back on `<service>.events` as it came, for the
consumer to read again with the code it runs now.
"""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from typing import Any

from events import topology
from events.envelope import Envelope
from events.models import DeadLetter

logger = logging.getLogger(__name__)


BASE64 = "base64:"
# Publishing from here waits out a short broker hiccup, not an outage.
RETRY_POLICY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2}


def _printable(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return BASE64 + base64.b64encode(body).decode()
    return BASE64 + base64.b64encode(body).decode() if text.startswith(BASE64) else text


def _raw(text: str) -> bytes:
    return base64.b64decode(text[len(BASE64) :]) if text.startswith(BASE64) else text.encode()


def _jsonable_headers(headers: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (headers or {}).items():
        if isinstance(value, bytes):
            value = _printable(value)
        elif not isinstance(value, (str, int, float, bool, type(None))):
            value = str(value)
        out[str(key)] = value
    return out


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
) -> DeadLetter:
    return DeadLetter.objects.create(
        stage=DeadLetter.Stage.CONSUMER,
        service=service,
        handler=handler,
        event_id=envelope.event_id if envelope else "",
        event_type=envelope.event_type if envelope else "",
        event_version=envelope.event_version if envelope else "",
        envelope=envelope.to_dict() if envelope else None,
        traceparent=(envelope.traceparent or "") if envelope else "",
        reason=reason,
        raw_body=_printable(body),
        content_type=content_type or "",
        headers=_jsonable_headers(headers),
        routing_key=routing_key,
    )


def record_handler_failure(*, service: str, handler: str, envelope: Envelope, reason: str, tb: str, attempts: int) -> DeadLetter:
    dead = DeadLetter.objects.create(
        stage=DeadLetter.Stage.HANDLER,
        service=service,
        handler=handler,
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        event_version=envelope.event_version,
        envelope=envelope.to_dict(),
        traceparent=envelope.traceparent or "",
        reason=reason,
        traceback=tb,
        attempts=attempts,
        routing_key=f"{service}.events",
    )
    try:
        _publish_to_dlq(service, envelope, reason, handler)
    except Exception:
        logger.exception(
            "dead letter %s is stored but could not be copied to %s", dead.pk, topology.dead_letter_queue_name(service)
        )
    return dead


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
    """Deliver the event of `dead_letter` again (see the module docstring); then mark it replayed."""
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
        handling.dispatch(subscription, [handling.item(envelope)])
    elif dead_letter.stage == DeadLetter.Stage.CONSUMER and dead_letter.raw_body:
        _republish_raw(dead_letter)
    else:
        raise NotReplayable("this dead letter keeps neither a handler's event nor the message it came as")
    # Sent first, marked second: a crash in between replays twice, which the inbox absorbs.
    DeadLetter.objects.filter(pk=dead_letter.pk).update(status=DeadLetter.Status.REPLAYED, replayed_at=datetime.now(UTC))


def _republish_raw(dead_letter: DeadLetter) -> None:
    _publish(
        _raw(dead_letter.raw_body),
        exchange="",
        routing_key=topology.event_queue_name(dead_letter.service),
        content_type=dead_letter.content_type or "application/json",  # what the consumer assumed
        content_encoding="binary",
        headers=dead_letter.headers,
        delivery_mode=2,
        serializer=None,
    )
