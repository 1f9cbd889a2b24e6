"""The consumer step: inside a Celery worker, turns `<service>.events` messages into handler tasks.

On a connection and thread of its own it consumes `<service>.events` for each service on the
worker's `-Q` (one consumer per queue, on one channel). For each message it reads the envelope
(this project's, or a CloudEvent), converts it to the version each of the service's handlers
declared, and queues `events.handle` tasks on the service's task queue; only then does it ack.

Guarantees:
- A message is acked only after the tasks made from it were confirmed by the broker, so a crash
  anywhere redelivers it (handlers deduplicate). A task publish the broker refuses (a length limit
  on the task queue, an alarm) is tried again with backoff while the consumer keeps the messages:
  they are not given back, so their delivery count does not grow.
- Events for one handler travel together in one task, flushed as soon as no further message is
  waiting on the connection, when `EVENTS_CONSUMER_BATCH_SIZE` are waiting, or at the latest
  `EVENTS_CONSUMER_BATCH_WINDOW_MS` after the first; each keeps its own inbox row, retry and
  dead letter. While tasks sent before are still queued (the service's workers are busy) the
  batch waits for them and grows, up to `EVENTS_CONSUMER_MAX_HOLD_MS` after its first event.
- A message whose content cannot be used, for whatever reason (not JSON, nested too deep, a
  timestamp out of range, an unknown type or version, data not matching its schema, no handler
  in this service's code) is stored as a `DeadLetter` with the reason on first sight (with its
  eventId whenever one can be read) and rejected to `<service>.events.dlq`; a handler that cannot
  get the version it wants gets a dead letter of its own. The consumer goes on. Only
  infrastructure failures (the database is down) give a message back to the broker; an ordered
  one never: given back alone it would come back behind later events of its subject, so it is
  tried again in place, with backoff, and the ordered messages delivered meanwhile wait behind it.
- Whatever the broker itself dead-letters from `<service>.events` (its delivery limit, a policy's
  length limit or TTL) gets a dead letter too: the consumer reads the copy in
  `<service>.events.dlq.audit` and records it with the reason from `x-death`.
- Nothing but JSON is ever deserialized.
- A service's ordered handlers take their events from `<service>.events.ordered` instead, on a
  channel of their own, through the lanes of `events/ordered.py`; each such message is acked on
  its own once its lane has handled it.
- Leaving (a warm shutdown, a restart of the worker's consumer), the consumer never cancels its
  ordered consumer: it lets the lanes finish the batches they are running, acks them, and closes
  the ordered channel. RabbitMQ hands a single-active-consumer queue to the next consumer the
  moment the active one cancels, but gives back the messages that consumer still holds only when
  its channel closes, behind later ones already delivered to the next; a close gives them back
  and hands over in one step, so the next consumer gets them first.
- An event older than a handler's `max_age` is not handed to that handler; the skip is counted
  per handler (`HandlerSkips`), before the message is acked.
- Told to stop while the broker is unreachable, the consumer gives up connecting within a few
  seconds, once a connection attempt under way has timed out (kombu's reconnect loop would go on
  for ever): a restart of the worker's consumer during an
  outage leaves no thread of the old one behind, to come back with the broker beside the new one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import bootsteps
from django.db import close_old_connections
from kombu import Connection, Consumer, Message
from kombu.mixins import ConsumerMixin

from events import telemetry

logger = logging.getLogger(__name__)

# A batch is flushed before its events add up to this much, keeping each task message small.
MAX_BATCH_BYTES = 4 * 1024 * 1024
# While a batch is held (see `_flush_unless_backed_up`), how often the consumer looks again.
HOLD_POLL_SECONDS = 0.005
# Leaving, how long the consumer waits for the ordered lanes to finish the batches they are running (within the
# worker's 10 s for the consumer step to stop).
LANES_FINISH_SECONDS = 8.0


class HandOverInOrder(Consumer):
    """The consumer of an ordered queue: on leaving it closes its channel instead of cancelling.

    A cancel makes RabbitMQ activate the next single active consumer at once, with the messages
    that follow, while the unacked messages of the cancelled one come back only when its channel
    closes: behind later ones. Closing the channel returns them as the consumer goes, so they are
    the first the next consumer gets."""

    def __exit__(self, exc_type: Any, exc_val: BaseException | None, exc_tb: Any) -> None:
        channel = self.channel
        if channel is None or not channel.connection:
            return
        if isinstance(exc_val, channel.connection.client.connection_errors):
            return  # the connection is gone: the broker gives the messages back with it
        quiet = _IgnoredDeliveries(channel.channel_id)
        logging.getLogger("amqp").addFilter(quiet)
        try:
            if channel.is_open:
                channel.close()
        except Exception as exc:
            logger.debug("could not close the ordered channel (%s)", exc)
        finally:
            logging.getLogger("amqp").removeFilter(quiet)
        if quiet.ignored:
            logger.info("ordered channel closed; %d messages delivered meanwhile go back to the queue", quiet.ignored)


class _IgnoredDeliveries(logging.Filter):
    """Counts, instead of logging one warning each, the deliveries py-amqp ignores while a channel closes."""

    def __init__(self, channel_id: int) -> None:
        super().__init__()
        self.channel_id = channel_id
        self.ignored = 0

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if "during closing channel" in str(record.msg) and len(args) == 2 and args[1] == self.channel_id:
            self.ignored += 1
            return False
        return True


class Leaving(Exception):
    """The consumer step is stopping while the broker cannot be reached: it stops trying."""


class EventConsumer(ConsumerMixin):
    def __init__(
        self,
        connection: Connection,
        services: list[str],
        *,
        batch_size: int,
        window: float,
        prefetch: int,
        lanes: int = 4,
        ordered_prefetch: int = 200,
        hold: float = 0.0,
    ) -> None:
        from events import subscriptions
        from events.ordered import Lanes

        self.connection = connection
        self.services = services
        self.batch_size = batch_size
        self.window = window
        self.hold = hold
        self.prefetch = prefetch
        self.ordered_prefetch = ordered_prefetch
        self.ordered_services = [service for service in services if subscriptions.has_ordered(service)]
        self.lanes = Lanes(lanes, batch_size) if self.ordered_services else None
        self._recovering = 0  # redelivered ordered messages not done yet: the others wait for them
        self._stalled = False  # an ordered message is to be tried again: the ordered ones delivered meanwhile are held
        self._waiting: list[Any] = []
        self._skips: dict[str, tuple[str, int, str]] = {}  # handler -> (service, late, last event id)
        self._batches: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._unacked: list[Message] = []
        self._buffered_bytes = 0
        self._first_buffered_at: float | None = None
        self._live: Connection | None = None  # the connection consumed from (ConsumerMixin uses a clone)
        self._flushing = False
        self._held: list[tuple[Any, str, Message]] = []  # (on_message or on_ordered, service, message)
        self._holding = False  # the buffered batch waits for the handler tasks queued before it
        self._probe: Any = None  # a channel for asking the broker how many handler tasks are still queued
        self._probed: tuple[float, bool] = (0.0, False)

    # -- kombu.mixins.ConsumerMixin
    def get_consumers(self, consumer_cls: type[Consumer], channel: Any) -> list[Consumer]:
        from events import topology

        topology.declare(channel, self.services)
        consumers = []
        for service in self.services:
            consumers.append(
                consumer_cls(
                    queues=[topology.event_queue(service)],
                    on_message=lambda message, service=service: self.on_message(service, message),
                    prefetch_count=self.prefetch,
                    no_ack=False,
                )
            )
            consumers.append(
                consumer_cls(
                    queues=[topology.dead_letter_audit_queue(service)],
                    on_message=lambda message, service=service: self.on_audit(service, message),
                    no_ack=False,
                )
            )
        if self.ordered_services:
            # A channel of its own: its messages are acked one by one, apart from the batches' ack(multiple).
            ordered_channel = channel.connection.channel()
            for service in self.ordered_services:
                consumers.append(
                    HandOverInOrder(
                        ordered_channel,
                        queues=[topology.ordered_queue(service)],
                        on_message=lambda message, service=service: self.on_ordered(service, message),
                        prefetch_count=self.ordered_prefetch,
                        no_ack=False,
                    )
                )
            self.lanes.start()
        return consumers

    @contextmanager
    def establish_connection(self) -> Iterator[Connection]:
        # ConsumerMixin's, with a callback kombu calls every second while it waits to connect again.
        with self.create_connection() as conn:
            conn.ensure_connection(self.on_connection_error, self.connect_max_retries, callback=self._unless_leaving)
            yield conn

    def _unless_leaving(self) -> None:
        if self.should_stop:
            raise Leaving("stopped while the broker could not be reached")

    def on_connection_error(self, exc: BaseException, interval: float) -> None:
        self._unless_leaving()
        logger.warning("broker connection error: %r; trying again in %.1f s", exc, interval)

    def on_connection_revived(self) -> None:
        # Unacked messages of a lost channel are redelivered: forget them.
        self._batches.clear()
        self._unacked.clear()
        self._held.clear()
        self._buffered_bytes = 0
        self._first_buffered_at = None
        self._skips.clear()
        if self.lanes is not None:
            self.lanes.reset()
        self._recovering = 0
        self._stalled = False
        self._waiting.clear()
        self._holding = False
        self._probe = None

    def consume(self, limit: int | None = None, timeout: float | None = None, safety_interval: float = 1, **kwargs: Any):  # noqa: ANN201
        with self.consumer_context(**kwargs) as (conn, _channel, _consumers):
            self._live = conn
            while not self.should_stop:
                # With events buffered, only read what has already arrived: once nothing more is waiting
                # the batch goes at once, so a batch costs no latency when the bus is quiet.
                buffered = self._first_buffered_at is not None
                wait = safety_interval
                if self.lanes is not None and self.lanes.busy:
                    wait = 0.005  # ordered work in the lanes: come back soon to ack what they finish
                if buffered:
                    wait = HOLD_POLL_SECONDS if self._holding else 0
                try:
                    conn.drain_events(timeout=wait)
                except TimeoutError:
                    if buffered:
                        self._flush_unless_backed_up(conn)
                    else:
                        conn.heartbeat_check()
                if self._first_buffered_at is not None and time.monotonic() - self._first_buffered_at >= self.window:
                    self._flush_unless_backed_up(conn)
                if self.lanes is not None:
                    self._ack_ordered()
                while self._held and not self._flushing:
                    receive, service, message = self._held.pop(0)
                    receive(service, message)
                yield
            if self.lanes is not None:
                self._finish_lanes(conn)

    # -- messages
    def on_message(self, service: str, message: Message) -> None:
        if self._flushing:
            self._held.append((self.on_message, service, message))  # delivered while a refused flush waits: read it afterwards
            return
        try:
            with telemetry.receiving(service, message.delivery_info.get("routing_key", ""), message.headers):
                self._on_message(service, message)
        except Exception as exc:
            self._failed(service, message, exc)
            return
        if len(self._unacked) >= self.batch_size or self._buffered_bytes >= MAX_BATCH_BYTES:
            self.flush()

    def _on_message(self, service: str, message: Message) -> None:
        wanted = self._read(service, message, ordered=False)
        if wanted is None:
            return
        from events.handling import item

        envelope, handlers = wanted
        for subscription, converted in handlers:
            self._batches[subscription.name].append(item(converted))
        self._unacked.append(message)
        self._buffered_bytes += len(message.body)
        if self._first_buffered_at is None:
            self._first_buffered_at = time.monotonic()

    def _read(self, service: str, message: Message, *, ordered: bool) -> tuple[Any, list[tuple[Any, Any]]] | None:
        """The envelope of `message` and, for each of the service's (un)ordered handlers that takes it now, the event
        in that handler's version. None if the message was dead-lettered."""
        from events import deadletters, registry, subscriptions
        from events.envelope import decode_message
        from events.errors import EventError
        from events.observability import logs, metrics

        logs.clear(service=service)
        routing_key = message.delivery_info.get("routing_key", "")
        # py-amqp hands over text when the producer named a content encoding.
        body = message.body.encode() if isinstance(message.body, str) else message.body
        envelope = None
        try:
            envelope = telemetry.continued(decode_message(body, message.content_type, message.headers))
            logs.bind_event(envelope)
            event_type = registry.get(envelope.event_type)
            validated = event_type.validate(envelope.data, envelope.event_version)
            matching = subscriptions.matching([service], event_type, ordered=ordered)
            if not matching and not ordered and subscriptions.matching([service], event_type, ordered=True):
                # Routed here by a binding from before its handlers became ordered: they read it from their own queue.
                return envelope, []
            if not matching:
                raise EventError(
                    f"{service} has no handler for {event_type.routing_key} (a binding newer than this worker's code?)"
                )
            wanted: list[tuple[Any, dict[str, Any] | None, str]] = []
            for subscription in matching:
                try:
                    wanted.append((subscription, event_type.convert(validated, envelope.event_version, subscription.version), ""))
                except Exception as exc:
                    wanted.append((subscription, None, _reason(exc)))
        except Exception as exc:
            self._dead_letter(service, message, body, _reason(exc), routing_key, envelope)
            return None
        for subscription, data, reason in wanted:
            if data is None:
                logger.error("%s cannot get %s: %s", subscription.name, envelope.event_id, reason)
                deadletters.record_unreadable(
                    service=service,
                    reason=reason,
                    body=body,
                    content_type=message.content_type,
                    headers=message.headers,
                    routing_key=routing_key,
                    envelope=envelope,
                    handler=subscription.name,
                )
        handlers = []
        for subscription, data, _ in wanted:
            if data is None:
                continue
            if subscription.max_age is not None and _age(envelope) > subscription.max_age.total_seconds():
                logger.info("%s skips %s: older than %s", subscription.name, envelope.event_id, subscription.max_age)
                _, late, _ = self._skips.get(subscription.name, (service, 0, ""))
                self._skips[subscription.name] = (service, late + 1, envelope.event_id)
                continue
            handlers.append((subscription, envelope.with_data(data, subscription.version)))
        metrics.consumed(service, envelope.event_type)
        return envelope, handlers

    # -- ordered handlers
    def on_ordered(self, service: str, message: Message) -> None:
        if self._flushing or self._stalled:
            self._held.append((self.on_ordered, service, message))  # read after the refused flush, as other messages are
            return
        if self.lanes.halted:
            return  # leaving: the message goes back, in order, when the ordered channel closes
        from events.ordered import Work

        attempt = 0
        while True:
            try:
                wanted = self._read(service, message, ordered=True)
                break
            except Exception as exc:
                if self._dead_lettered(service, message, exc):
                    return
                attempt += 1
                logger.error(
                    "could not process a message on %s.events.ordered (%s); trying it again, the ordered messages after it wait",
                    service,
                    _reason(exc),
                )
                if not self._stall(attempt):
                    return  # stopping: it goes back, in order, when the ordered channel closes
        if wanted is None:
            return
        envelope, handlers = wanted
        redelivered = bool(message.delivery_info.get("redelivered"))
        work = Work(service, message, envelope, handlers, self.lanes.epoch, redelivered=redelivered)
        if redelivered:
            self._recovering += 1
        elif self._recovering:
            self._waiting.append(work)  # must not overtake an event that came back
            return
        self.lanes.submit(work)

    def _ack_ordered(self) -> None:
        finished = self.lanes.completed()
        if not finished:
            return
        self._save_skips()
        for work in finished:
            if work.redelivered:
                self._recovering -= 1
            work.message.ack()
        if not self._recovering and self._waiting:
            waiting, self._waiting = self._waiting, []
            for work in waiting:
                self.lanes.submit(work)

    def _finish_lanes(self, conn: Connection) -> None:
        """Stopping: the lanes finish the batches they are running and take no more; what they finish is acked, the
        rest goes back to the queue when the ordered channel closes. The connection is kept alive meanwhile (messages
        delivered in the while stay unacked and go back too)."""
        self.lanes.halt()
        deadline = time.monotonic() + LANES_FINISH_SECONDS
        while self.lanes.running and time.monotonic() < deadline:
            try:
                conn.drain_events(timeout=0.05)
            except TimeoutError:
                conn.heartbeat_check()
            self._ack_ordered()
        self._ack_ordered()

    def _save_skips(self) -> None:
        """Count the late events skipped since the last save (before their messages are acked)."""
        if not self._skips:
            return
        from django.utils import timezone

        now = timezone.now()
        try:
            self._store_skips(now)
        except Exception as exc:
            logger.warning("could not count %d handlers' late events now (%s); counting them later", len(self._skips), exc)

    def _store_skips(self, now: Any) -> None:
        from django.db import IntegrityError, transaction
        from django.db.models import F

        from events.models import HandlerSkips

        for handler, (service, late, last) in list(self._skips.items()):
            fields = {"late": F("late") + late, "last_event_id": last, "last_skipped_at": now}
            if not HandlerSkips.objects.filter(handler=handler).update(**fields):
                try:
                    with transaction.atomic():
                        HandlerSkips.objects.create(
                            handler=handler, service=service, late=late, last_event_id=last, last_skipped_at=now
                        )
                except IntegrityError:
                    HandlerSkips.objects.filter(handler=handler).update(**fields)
            del self._skips[handler]

    def _dead_letter(self, service: str, message: Message, body: bytes, reason: str, routing_key: str, envelope: Any) -> None:
        from events import deadletters

        logger.error("dead-lettering a message on %s.events (%s): %s", service, routing_key, reason)
        telemetry.failed(reason)
        deadletters.record_unreadable(
            service=service,
            reason=reason,
            body=body,
            content_type=message.content_type,
            headers=message.headers,
            routing_key=routing_key,
            envelope=envelope,
            event_id="" if envelope is not None else _event_id_of(message, body),
        )
        message.reject(requeue=False)

    def _failed(self, service: str, message: Message, exc: Exception) -> None:
        """Processing `message` failed after its content was read. The database unavailable: back off and let
        the broker deliver it again. Anything else: a dead letter saying what failed, so that it cannot loop."""
        if self._dead_lettered(service, message, exc):
            return
        logger.error("could not process a message on %s.events (%s); requeueing it", service, _reason(exc))
        time.sleep(1.0)
        message.reject(requeue=True)

    def _stall(self, attempt: int) -> bool:
        """Before an ordered message is tried again: wait (backoff), keeping the connection alive, the ordered messages
        delivered meanwhile held behind it. False if the consumer is to stop."""
        self._stalled = True
        try:
            self._pause(min(0.5 * 2 ** (attempt - 1), 10.0))
        finally:
            self._stalled = False
        return not self.should_stop

    def _dead_lettered(self, service: str, message: Message, exc: Exception) -> bool:
        """Unless `exc` is the database's (then False: the message is to be tried again), store a dead letter saying
        what failed and reject the message, so that it cannot loop."""
        from django.db import InterfaceError, OperationalError

        from events import deadletters

        if not isinstance(exc, OperationalError | InterfaceError):
            body = message.body.encode() if isinstance(message.body, str) else message.body
            try:
                deadletters.record_unreadable(
                    service=service,
                    reason=f"the consumer failed on this message: {_reason(exc)}",
                    body=body,
                    content_type=message.content_type,
                    headers=message.headers,
                    routing_key=message.delivery_info.get("routing_key", ""),
                    event_id=_event_id_of(message, body),
                )
            except Exception as store_exc:
                logger.error("could not store the dead letter of a message on %s.events: %s", service, _reason(store_exc))
            else:
                logger.error("dead-lettering a message on %s.events the consumer failed on: %s", service, _reason(exc))
                message.reject(requeue=False)
                return True
        close_old_connections()
        return False

    def on_audit(self, service: str, message: Message) -> None:
        """A copy of something dead-lettered to `<service>.events.dlq`: record what the broker dead-lettered."""
        from events.observability import logs

        logs.clear(service=service)
        try:
            self._audit(service, message)
        except Exception:
            # The database is down, say: the copy comes back (the DLQ keeps the message meanwhile).
            logger.exception("could not record a dead-lettered message of %s; requeueing it", service)
            close_old_connections()
            time.sleep(1.0)
            message.reject(requeue=True)
            return
        message.ack()

    def _audit(self, service: str, message: Message) -> None:
        from events import deadletters, topology
        from events.envelope import decode_message
        from events.models import DeadLetter

        death = deadletters.describe_x_death(message.headers)
        if death is None:
            return  # the copy of a handler's dead letter, recorded when it was sent
        ours = (topology.event_queue_name(service), topology.ordered_queue_name(service))
        if death.reason == "rejected" and death.queue in ours:
            return  # rejected by this consumer, recorded then
        body = message.body.encode() if isinstance(message.body, str) else message.body
        try:
            envelope = decode_message(body, message.content_type, message.headers)
        except Exception:
            envelope = None
        logger.error("RabbitMQ dead-lettered a message of %s: %s", service, death.text)
        deadletters.record_unreadable(
            service=service,
            reason=death.text,
            body=body,
            content_type=message.content_type,
            headers=message.headers,
            routing_key=death.routing_key,
            envelope=envelope,
            event_id="" if envelope is not None else _event_id_of(message, body),
            stage=DeadLetter.Stage.BROKER,
        )

    def _flush_unless_backed_up(self, conn: Connection) -> None:
        """Flush, unless handler tasks sent earlier are still queued and the batch may wait a little longer.

        A task queued behind others is handled no sooner than they are: while they wait, the events
        arriving meanwhile join this batch instead of making tasks of their own, at most
        `EVENTS_CONSUMER_MAX_HOLD_MS` after its first event. Under load that makes fewer, larger
        tasks (a batch handler's work per task hardly grows with its size); on a quiet bus nothing
        is queued and the batch goes at once."""
        first = self._first_buffered_at
        if first is not None and time.monotonic() - first < self.hold and self._tasks_queued(conn):
            self._holding = True
            return
        self.flush()

    def _tasks_queued(self, conn: Connection) -> bool:
        """Whether a task queue of the buffered handlers has tasks no worker has taken yet (asked at most every 5 ms)."""
        from events import subscriptions
        from events.topology import task_queue

        now = time.monotonic()
        if now - self._probed[0] < HOLD_POLL_SECONDS:
            return self._probed[1]
        queued = False
        try:
            if self._probe is None:
                self._probe = conn.channel()
            for service in {s.service for name in self._batches if (s := subscriptions.get(name)) is not None}:
                if self._probe.queue_declare(queue=task_queue(service).name, passive=True).message_count:
                    queued = True
                    break
        except Exception as exc:  # a queue not declared yet closes the channel: flush now, open another next time
            logger.debug("could not ask for the handler tasks queued (%s)", exc)
            self._probe = None
        self._probed = (now, queued)
        return queued

    def flush(self) -> None:
        """Queue the buffered events as handler tasks, then ack their messages; a refused publish is tried again."""
        from events import subscriptions
        from events.handling import dispatch
        from events.observability import logs

        logs.clear(service=",".join(self.services))
        pending = dict(self._batches)
        failures = 0
        self._flushing = True
        try:
            while pending:
                name, items = next(iter(pending.items()))
                try:
                    with telemetry.dispatching(items):
                        dispatch(subscriptions.get(name), items)
                except Exception as exc:
                    if self.should_stop or not self._task_publish_refused(exc):
                        raise  # the connection is gone: the consumer restarts and the messages come again
                    failures += 1
                    delay = min(0.25 * 2**failures, 10.0)
                    logger.warning(
                        "the broker refused %d events for %s (%s: %s); keeping their messages, trying again in %.1fs",
                        len(items),
                        name,
                        type(exc).__name__,
                        exc,
                        delay,
                    )
                    self._pause(delay)
                    continue
                del pending[name]
        finally:
            self._flushing = False
        self._save_skips()
        if self._unacked:
            # One ack for all: every earlier delivery on this channel is in the batch, already settled, or held back.
            self._unacked[-1].ack(multiple=True)
        self._batches.clear()
        self._unacked.clear()
        self._buffered_bytes = 0
        self._first_buffered_at = None
        self._holding = False
        self._probed = (0.0, False)

    @staticmethod
    def _task_publish_refused(exc: BaseException | None) -> bool:
        """Whether the broker nacked the publish (kombu raises it as the cause of an OperationalError)."""
        from amqp.exceptions import MessageNacked

        while exc is not None:
            if isinstance(exc, MessageNacked):
                return True
            exc = exc.__cause__
        return False

    def _pause(self, seconds: float) -> None:
        """Wait, keeping the consumer's connection alive (messages delivered meanwhile are held)."""
        deadline = time.monotonic() + seconds
        while not self.should_stop and (remaining := deadline - time.monotonic()) > 0:
            if self._live is None:
                time.sleep(remaining)
                return
            try:
                self._live.drain_events(timeout=min(remaining, 1.0))
            except TimeoutError:
                self._live.heartbeat_check()


def _reason(exc: BaseException) -> str:
    from events.errors import EventError

    return str(exc) if isinstance(exc, EventError) else f"{type(exc).__name__}: {str(exc)[:500]}"


def _event_id_of(message: Message, body: bytes) -> str:
    """The eventId of a message that could not be read as an event, where one can still be found."""
    import json

    headers = message.headers or {}
    for value in (message.properties.get("message_id"), headers.get("ce-id")):
        if value:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    try:
        parsed = json.loads(body)
    except Exception:
        return ""
    event_id = parsed.get("eventId") if isinstance(parsed, dict) else None
    return event_id if isinstance(event_id, str) else ""


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
            lanes=settings.EVENTS_ORDERED_LANES,
            ordered_prefetch=settings.EVENTS_ORDERED_PREFETCH,
            hold=settings.EVENTS_CONSUMER_MAX_HOLD_MS / 1000,
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
                except Leaving:
                    logger.info("event consumer stopped while the broker could not be reached")
                except Exception:
                    logger.exception("event consumer failed; restarting it in 1s")
                    time.sleep(1.0)
        finally:
            if consumer.lanes is not None:
                consumer.lanes.stop()
            connections.close_all()

    def stop(self, parent: Any) -> None:
        if self.consumer is not None:
            self.consumer.should_stop = True
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.consumer = None
        self.thread = None

    shutdown = stop
