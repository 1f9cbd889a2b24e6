"""Loading orders from the event log: now, at a version, or as they were at a past moment."""

from __future__ import annotations

from datetime import datetime

from events import streams
from events.models import StoredEvent
from orders.domain import Order, fold

ORDER_ID_PREFIX = "ORD-"


def history(order_id: str) -> list[StoredEvent]:
    return streams.read(order_id)


def of_events(order_id: str, rows: list[StoredEvent]) -> Order:
    return fold(order_id, ((row.event_type, row.data, row.sequence, row.timestamp) for row in rows))


def load(order_id: str) -> Order:
    return of_events(order_id, history(order_id))


def as_of(order_id: str, moment: datetime) -> Order:
    """The order as it was at `moment`: its stream up to the first event recorded after it."""
    rows = []
    for row in history(order_id):
        if row.timestamp > moment:
            break
        rows.append(row)
    return of_events(order_id, rows)
