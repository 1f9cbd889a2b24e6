"""A reliable event bus for Django services: outbox, relay, per-service consumers.

Public API::

    from events import EventType, Event, publish, subscribe
"""

from events.registry import EventSchema, EventType, event_type
from events.subscriptions import Event, subscribe


def publish(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - thin re-export, see events.publishing.publish
    from events.publishing import publish as _publish

    return _publish(*args, **kwargs)


__all__ = ["Event", "EventSchema", "EventType", "event_type", "publish", "subscribe"]
