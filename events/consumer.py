"""The consumer step: inside a Celery worker, turns `<service>.events` messages into handler tasks.

On a connection and thread of its own it consumes `<service>.events` for each service on the
worker's `-Q` (one consumer per queue, on one channel). For each message it reads the envelope
(this project's, or a CloudEvent), converts it to the version each of the service's handlers
declared, and queues `events.handle` tasks on the service's task queue; only then does it ack.

Guarantees:
- A message is acked only after the tasks made from it were confirmed by the broker, so a crash
  anywhere redelivers it (handlers deduplicate).
- Events for one handler travel together in one task, flushed when `EVENTS_CONSUMER_BATCH_SIZE`
  are waiting or `EVENTS_CONSUMER_BATCH_WINDOW_MS` after the first; each keeps its own inbox
  row, retry and dead letter.
- A message that cannot be read, is of an unknown type or version, does not match its schema or
  has no handler in this service's code is stored as a `DeadLetter` with the reason and rejected
  to `<service>.events.dlq`; a handler that cannot get the version it wants gets a dead letter of
  its own. The consumer goes on. Such dead letters can be replayed once the code is fixed.
- Nothing but JSON is ever deserialized.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import Any

from celery import bootsteps
from django.db import close_old_connections
from kombu import Connection, Consumer, Message
from kombu.mixins import ConsumerMixin

logger = logging.getLogger(__name__)

# A batch is flushed before its events add up to this much, keeping each task message small.
MAX_BATCH_BYTES = 4 * 1024 * 1024


class EventConsumer(ConsumerMixin):
    def __init__(self, connection: Connection, services: list[str], *, batch_size: int, window: float, prefetch: int) -> None:
        self.connection = connection
        self.services = services
        self.batch_size = batch_size
        self.window = window
        self.prefetch = prefetch
        self._batches: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._unacked: list[Message] = []
        self._buffered_bytes = 0
        self._first_buffered_at: float | None = None

    # -- kombu.mixins.ConsumerMixin
    def get_consumers(self, consumer_cls: type[Consumer], channel: Any) -> list[Consumer]:
        from events import topology

        topology.declare(channel, self.services)
        consumers = []
        for service in self.services:
            consumer = consumer_cls(
                queues=[topology.event_queue(service)],
                on_message=lambda message, service=service: self.on_message(service, message),
                prefetch_count=self.prefetch,
                no_ack=False,
            )
            consumers.append(consumer)
        return consumers

    def on_connection_revived(self) -> None:
        # Unacked messages of a lost channel are redelivered: forget them.
        self._batches.clear()
        self._unacked.clear()
        self._buffered_bytes = 0
        self._first_buffered_at = None

    def consume(self, limit: int | None = None, timeout: float | None = None, safety_interval: float = 1, **kwargs: Any):  # noqa: ANN201
        with self.consumer_context(**kwargs) as (conn, _channel, _consumers):
            while not self.should_stop:
                wait = safety_interval
                if self._first_buffered_at is not None:
                    wait = max(0.0, self._first_buffered_at + self.window - time.monotonic())
                try:
                    conn.drain_events(timeout=wait)
                except TimeoutError:
                    conn.heartbeat_check()
                if self._first_buffered_at is not None and time.monotonic() - self._first_buffered_at >= self.window:
                    self.flush()
                yield

    # -- messages
    def on_message(self, service: str, message: Message) -> None:
        try:
            self._on_message(service, message)
        except Exception:
            # Not the message's fault as far as we know (database down?): back off and let the
            # broker redeliver it; a quorum queue dead-letters it after DELIVERY_LIMIT attempts.
            logger.exception("could not process a message on %s.events; requeueing it", service)
            close_old_connections()
            time.sleep(1.0)
            message.reject(requeue=True)
            return
        # Outside the try: if the tasks cannot be sent, the consumer restarts and every unacked
        # message is delivered again.
        if len(self._unacked) >= self.batch_size or self._buffered_bytes >= MAX_BATCH_BYTES:
            self.flush()

    def _on_message(self, service: str, message: Message) -> None:
        from events import deadletters, registry, subscriptions
        from events.envelope import decode_message
        from events.errors import EventError
        from events.handling import item

        routing_key = message.delivery_info.get("routing_key", "")
        # py-amqp hands over text when the producer named a content encoding.
        body = message.body.encode() if isinstance(message.body, str) else message.body
        try:
            envelope = decode_message(body, message.content_type, message.headers)
            event_type = registry.get(envelope.event_type)
            event_type.validate(envelope.data, envelope.event_version)
        except EventError as exc:
            self._dead_letter(service, message, body, str(exc), routing_key)
            return
        matching = subscriptions.matching([service], event_type)
        if not matching:
            reason = f"{service} has no handler for {event_type.routing_key} (a binding newer than this worker's code?)"
            self._dead_letter(service, message, body, reason, routing_key)
            return
        for subscription in matching:
            try:
                data = event_type.convert(envelope.data, envelope.event_version, subscription.version)
            except EventError as exc:
                logger.error("%s cannot get %s: %s", subscription.name, envelope.event_id, exc)
                deadletters.record_unreadable(
                    service=service,
                    reason=str(exc),
                    body=body,
                    content_type=message.content_type,
                    headers=message.headers,
                    routing_key=routing_key,
                    envelope=envelope,
                    handler=subscription.name,
                )
                continue
            if subscription.max_age is not None and _age(envelope) > subscription.max_age.total_seconds():
                logger.info("%s skips %s: older than %s", subscription.name, envelope.event_id, subscription.max_age)
                continue
            self._batches[subscription.name].append(item(envelope.with_data(data, subscription.version)))
        self._unacked.append(message)
        self._buffered_bytes += len(body)
        if self._first_buffered_at is None:
            self._first_buffered_at = time.monotonic()

    def _dead_letter(self, service: str, message: Message, body: bytes, reason: str, routing_key: str) -> None:
        from events import deadletters

        logger.error("dead-lettering a message on %s.events (%s): %s", service, routing_key, reason)
        deadletters.record_unreadable(
            service=service,
            reason=reason,
            body=body,
            content_type=message.content_type,
            headers=message.headers,
            routing_key=routing_key,
        )
        message.reject(requeue=False)

    def flush(self) -> None:
        from events import subscriptions
        from events.handling import dispatch

        for name, items in self._batches.items():
            dispatch(subscriptions.get(name), items)
        if self._unacked:
            # One ack for all: every earlier delivery on this channel is in the batch or already rejected.
            self._unacked[-1].ack(multiple=True)
        self._batches.clear()
        self._unacked.clear()
        self._buffered_bytes = 0
        self._first_buffered_at = None


def _age(envelope: Any) -> float:
    return time.time() - envelope.timestamp.timestamp()


class EventConsumerStep(bootsteps.StartStopStep):
    """Worker bootstep running an `EventConsumer` for the services on the worker's -Q."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.consumer: EventConsumer | None = None
        self.thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        from django.conf import settings

        queues = set(parent.app.amqp.queues.consume_from or parent.app.amqp.queues)
        services = [service for service in settings.SERVICES if service in queues]
        if not services:
            return
        self.consumer = EventConsumer(
            parent.app.connection_for_read(),
            services,
            batch_size=settings.EVENTS_CONSUMER_BATCH_SIZE,
            window=settings.EVENTS_CONSUMER_BATCH_WINDOW_MS / 1000,
            prefetch=settings.EVENTS_CONSUMER_PREFETCH,
        )
        self.thread = threading.Thread(target=self._run, args=(self.consumer,), name="event-consumer", daemon=True)
        self.thread.start()
        logger.info("consuming events for %s", ", ".join(f"{s}.events" for s in services))

    @staticmethod
    def _run(consumer: EventConsumer) -> None:
        from django.db import connections

        try:
            while not consumer.should_stop:
                try:
                    consumer.run()
                except Exception:
                    logger.exception("event consumer failed; restarting it in 1s")
                    time.sleep(1.0)
        finally:
            connections.close_all()

    def stop(self, parent: Any) -> None:
        if self.consumer is not None:
            self.consumer.should_stop = True
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.consumer = None
        self.thread = None

    shutdown = stop
