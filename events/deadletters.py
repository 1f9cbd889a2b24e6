"""The dead-letter store: events that could not be handled, with why; and replaying them.

Consumer-stage dead letters (unreadable, unknown type or version, unconvertible) keep the raw
message; the broker moves the message itself to `<service>.events.dlq`. Handler-stage dead
letters (retries exhausted) keep the event as the handler received it, and a copy of it is
published to `<service>.events.dlq` too. A handler-stage dead letter can be replayed: it is
handed to that one handler again, with fresh attempts.
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


def _printable(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(body).decode()


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
    from project.celery import app

    properties = envelope.amqp_properties()
    headers = {**properties.pop("application_headers"), "x-handler": handler, "x-reason": reason[:1000]}
    properties.pop("content_encoding")
    with app.producer_or_acquire() as producer:
        producer.publish(
            envelope.to_json(),
            exchange=topology.dead_letter_exchange,
            routing_key=topology.dead_letter_routing_key(service),
            declare=[topology.dead_letter_queue(service)],
            headers=headers,
            content_encoding="utf-8",
            retry=True,
            **properties,
        )


class NotReplayable(Exception):
    pass


def dead_letter_replay(*, dead_letter: DeadLetter) -> None:
    """Hand the event of `dead_letter` to its handler again, with fresh attempts."""
    from events import handling, subscriptions

    if not dead_letter.handler or dead_letter.envelope is None:
        raise NotReplayable("this dead letter names no handler and event: fix the producer and publish again")
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
    # Sent first, marked second: a crash in between replays twice, which the inbox absorbs.
    handling.dispatch(subscription, [handling.item(envelope)])
    DeadLetter.objects.filter(pk=dead_letter.pk).update(status=DeadLetter.Status.REPLAYED, replayed_at=datetime.now(UTC))
