"""Every name on the broker, built here and only here (see docs/architecture.md, "Names on the broker").

`declare(connection, services)` declares the whole topology idempotently: the topic exchange
`events` with its alternate exchange `events.unrouted`, the dead-letter exchange `events.dlx`,
and for each service its subscription queue `<service>.events` (bound with the routing keys of
its handlers), its dead-letter queue `<service>.events.dlq`, the audit queue beside it
`<service>.events.dlq.audit` (a copy of everything dead-lettered, which the consumer step reads to
give every message the broker dead-letters a record with its reason; the DLQ itself keeps its
messages), and its task queue `<service>` on the topic exchange `tasks`. A service with ordered
handlers also has `<service>.events.ordered`, a single-active-consumer queue bound with the
routing keys of those handlers (`<service>.events` then carries only what its unordered handlers
take; a binding left over from before a handler became ordered is removed). `describe(services)`
returns the same as text.

Queues are quorum queues unless `EVENTS_QUEUE_TYPE = "classic"`. Queue arguments must not change
once a queue exists on a broker (RabbitMQ refuses a redeclaration with other arguments).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from kombu import Connection, Exchange, Queue, binding

logger = logging.getLogger(__name__)

EVENTS = "events"
UNROUTED = "events.unrouted"
DLX = "events.dlx"
TASKS = "tasks"
# A message the consumer cannot even reject cleanly is dead-lettered by the broker after this many
# redeliveries (quorum queues only), so a poison message cannot loop forever.
DELIVERY_LIMIT = 20

events_exchange = Exchange(EVENTS, type="topic", durable=True, arguments={"alternate-exchange": UNROUTED})
unrouted_exchange = Exchange(UNROUTED, type="fanout", durable=True)
dead_letter_exchange = Exchange(DLX, type="direct", durable=True)
tasks_exchange = Exchange(TASKS, type="topic", durable=True)


def _queue_arguments(**extra: object) -> dict[str, object]:
    arguments: dict[str, object] = {}
    if settings.EVENTS_QUEUE_TYPE == "quorum":
        arguments["x-queue-type"] = "quorum"
    arguments.update(extra)
    return arguments


def event_queue_name(service: str) -> str:
    return f"{service}.events"


def dead_letter_queue_name(service: str) -> str:
    return f"{service}.events.dlq"


def dead_letter_audit_queue_name(service: str) -> str:
    return f"{service}.events.dlq.audit"


def ordered_queue_name(service: str) -> str:
    return f"{service}.events.ordered"


def dead_letter_routing_key(service: str) -> str:
    return event_queue_name(service)


def unrouted_queue() -> Queue:
    return Queue(UNROUTED, unrouted_exchange, durable=True, queue_arguments=_queue_arguments())


def task_queue(service: str) -> Queue:
    return Queue(service, tasks_exchange, routing_key=service, durable=True, queue_arguments=_queue_arguments())


def task_queues(services: Iterable[str]) -> list[Queue]:
    """Celery's task_queues: `default` plus one per service."""
    return [task_queue(name) for name in ["default", *services]]


def routing_keys(service: str, *, ordered: bool = False) -> list[str]:
    """The routing keys `service`'s unordered (or ordered) handlers subscribe to."""
    from events import subscriptions

    # Producers that still use a type's old name keep reaching its handlers.
    return sorted(
        {key for sub in subscriptions.for_service(service) if sub.ordered == ordered for key in sub.event_type.routing_keys}
    )


def _event_queue_arguments(service: str, **extra: object) -> dict[str, object]:
    arguments = _queue_arguments(
        **{"x-dead-letter-exchange": DLX, "x-dead-letter-routing-key": dead_letter_routing_key(service)}, **extra
    )
    if settings.EVENTS_QUEUE_TYPE == "quorum":
        arguments["x-delivery-limit"] = DELIVERY_LIMIT
    return arguments


def event_queue(service: str) -> Queue:
    """`<service>.events`, bound to `events` with one binding per routing key its unordered handlers take."""
    bindings = [_binding(key) for key in routing_keys(service)]
    return Queue(event_queue_name(service), bindings=bindings, durable=True, queue_arguments=_event_queue_arguments(service))


def ordered_queue(service: str) -> Queue:
    """`<service>.events.ordered`: what the service's ordered handlers take, read by one consumer at a time."""
    bindings = [_binding(key) for key in routing_keys(service, ordered=True)]
    arguments = _event_queue_arguments(service, **{"x-single-active-consumer": True})
    return Queue(ordered_queue_name(service), bindings=bindings, durable=True, queue_arguments=arguments)


def ordered_only_keys(service: str) -> list[str]:
    """Routing keys only ordered handlers of `service` take: `<service>.events` must not be bound to them."""
    unordered = set(routing_keys(service))
    return [key for key in routing_keys(service, ordered=True) if key not in unordered]


def dead_letter_queue(service: str) -> Queue:
    return Queue(
        dead_letter_queue_name(service),
        dead_letter_exchange,
        routing_key=dead_letter_routing_key(service),
        durable=True,
        queue_arguments=_queue_arguments(),
    )


def dead_letter_audit_queue(service: str) -> Queue:
    return Queue(
        dead_letter_audit_queue_name(service),
        dead_letter_exchange,
        routing_key=dead_letter_routing_key(service),
        durable=True,
        queue_arguments=_queue_arguments(),
    )


def _binding(routing_key: str) -> binding:
    return binding(events_exchange, routing_key=routing_key)


def service_queues(service: str) -> list[Queue]:
    from events import subscriptions

    queues = [event_queue(service)]
    if subscriptions.has_ordered(service):
        queues.append(ordered_queue(service))
    return [*queues, dead_letter_queue(service), dead_letter_audit_queue(service), task_queue(service)]


def all_queues(services: Iterable[str]) -> list[Queue]:
    queues = [unrouted_queue(), task_queue("default")]
    for service in services:
        queues.extend(service_queues(service))
    return queues


def declare(connection: Connection | Any, services: Iterable[str] | None = None) -> list[Queue]:
    """Declare exchanges and queues (idempotent) on a connection or channel; returns the queues."""
    services = list(settings.SERVICES if services is None else services)
    channel = connection.default_channel if isinstance(connection, Connection) else connection
    for exchange in (unrouted_exchange, events_exchange, dead_letter_exchange, tasks_exchange):
        exchange(channel).declare()
    queues = all_queues(services)
    for queue in queues:
        queue(channel).declare()
    for service in services:
        for key in ordered_only_keys(service):
            # Declared before the handler became ordered: its events now go to the ordered queue only.
            channel.queue_unbind(event_queue_name(service), EVENTS, key)
    return queues


def declare_quietly(services: Iterable[str] | None = None) -> bool:
    """Declare everything on the configured broker; log instead of raising if it is unreachable."""
    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
            declare(connection, services)
    except Exception as exc:
        logger.warning("could not declare the broker topology now (%s); it is declared again on connect", exc)
        return False
    return True


def describe(services: Iterable[str] | None = None) -> str:
    services = list(settings.SERVICES if services is None else services)
    lines = [
        f"exchange {EVENTS} (topic, durable, alternate-exchange={UNROUTED})",
        f"exchange {UNROUTED} (fanout, durable) -> queue {UNROUTED}",
        f"exchange {DLX} (direct, durable)",
        f"exchange {TASKS} (topic, durable)",
    ]
    for queue in all_queues(services):
        if queue.name == UNROUTED:
            continue
        kind = queue.queue_arguments.get("x-queue-type", "classic")
        if queue.exchange is not None and queue.exchange.name:
            routes = [(queue.exchange.name, queue.routing_key)]
        else:
            routes = [(b.exchange.name, b.routing_key) for b in queue.bindings]
        if not routes:
            lines.append(f"queue {queue.name} ({kind}) - no subscriptions yet")
        for exchange, key in routes:
            lines.append(f"queue {queue.name} ({kind}) <- {exchange} [{key}]")
    return "\n".join(lines)
