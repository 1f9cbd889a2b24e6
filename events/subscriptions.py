"""Handlers and what they subscribe to.

    @subscribe(UserRegistered, version="1.0", service="notifications")
    def send_welcome_email(event: Event[UserRegisteredV1]) -> None: ...

A handler is a plain function taking an `Event` whose `data` is the pydantic model of the version
it asked for; the consumer converts whatever version was published. The service names the
queues: the handler runs on workers started with `-Q <service>`.

`ordered=True` gives the handler each subject's events one at a time, in the order they were
committed, while different subjects still run in parallel (see `events/ordered.py`). `max_age`
skips events older than that on arrival, and counts them per handler (`HandlerSkips`).

`batch=True` hands the handler a list of events at once, the events of a handler task (or of an
ordered lane's batch) it has not handled yet, so that it can do its database work in a few
statements for all of them:

    @subscribe(LocationUpdated, version="1.0", service="tracking", batch=True)
    def keep_latest_position(events: list[Event[LocationUpdatedV1]]) -> None: ...

The list commits together with the events' inbox rows. If the handler raises, nothing of the list
is written and each event is run again on its own (a list of one), so a failing event is retried
and dead-lettered alone as with any handler, and the others are handled. For an ordered handler
the list keeps each subject's events in order. Events a batch handler publishes have no causing
event unless it says which: `with tracing.handling(event.envelope): publish(...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import pydantic

from events import registry
from events.envelope import Envelope
from events.registry import EventType

T = TypeVar("T", bound=pydantic.BaseModel)


@dataclass(frozen=True)
class Event(Generic[T]):
    """What a handler receives: the envelope, and its data as the handler's version's model."""

    envelope: Envelope
    data: T

    @property
    def id(self) -> str:
        return self.envelope.event_id

    @property
    def subject(self) -> str | None:
        return self.envelope.subject

    @property
    def sequence(self) -> int | None:
        return self.envelope.sequence

    @property
    def timestamp(self) -> datetime:
        return self.envelope.timestamp


Handler = Callable[[Event[Any]], None] | Callable[[list[Event[Any]]], None]


@dataclass(frozen=True)
class Subscription:
    name: str
    service: str
    event_type: EventType
    version: str
    func: Handler
    max_attempts: int | None = None
    max_age: timedelta | None = None
    ordered: bool = False
    batch: bool = False

    def __call__(self, event: Event[Any]) -> None:
        if self.batch:
            self.func([event])  # type: ignore[arg-type]
        else:
            self.func(event)  # type: ignore[arg-type]

    def run_batch(self, events: list[Event[Any]]) -> None:
        """Run a batch handler over `events` (`batch=True` only)."""
        self.func(events)  # type: ignore[arg-type]


_subscriptions: dict[str, Subscription] = {}


def subscribe(
    event: EventType | str,
    *,
    version: str,
    service: str,
    max_attempts: int | None = None,
    max_age: timedelta | None = None,
    ordered: bool = False,
    batch: bool = False,
) -> Callable[[Handler], Handler]:
    """Register the decorated function as `service`'s handler of `event` in `version`."""
    event_type = registry.get(event) if isinstance(event, str) else event
    event_type.schema(version)

    def decorator(func: Handler) -> Handler:
        name = f"{func.__module__}.{func.__qualname__}"
        _subscriptions[name] = Subscription(
            name=name,
            service=service,
            event_type=event_type,
            version=version,
            func=func,
            max_attempts=max_attempts,
            max_age=max_age,
            ordered=ordered,
            batch=batch,
        )
        return func

    return decorator


def get(name: str) -> Subscription | None:
    return _subscriptions.get(name)


def unregister(name: str) -> None:
    _subscriptions.pop(name, None)


def for_service(service: str) -> list[Subscription]:
    return sorted((s for s in _subscriptions.values() if s.service == service), key=lambda s: s.name)


def matching(services: list[str], event_type: EventType, *, ordered: bool | None = None) -> list[Subscription]:
    """The handlers of `event_type` in `services`; only the ordered (or only the unordered) ones if `ordered` says so."""
    return [
        s
        for s in _subscriptions.values()
        if s.service in services
        and s.event_type.routing_key == event_type.routing_key
        and (ordered is None or s.ordered == ordered)
    ]


def has_ordered(service: str) -> bool:
    return any(s.ordered for s in for_service(service))
