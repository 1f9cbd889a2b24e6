"""A reliable event bus for Django services: outbox, relay, per-service consumers.

Public API::

    from events import Event, EventSchema, event_type, publish, subscribe
"""

from typing import Any

from events.registry import EventSchema, EventType, event_type
from events.subscriptions import Event, subscribe

__all__ = ["Event", "EventSchema", "EventType", "event_type", "publish", "subscribe"]


def __getattr__(name: str) -> Any:
    # `publish` needs the models, which cannot be imported while Django loads this app.
    if name == "publish":
        from events.publishing import publish

        return publish
    raise AttributeError(f"module 'events' has no attribute {name!r}")
