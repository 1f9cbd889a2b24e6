"""The read model (OrderSummary) as a projection of the event log.

Guarantees:
- A row is a pure function of its order's stream (`row_of(fold(stream))`), so projecting live
  and rebuilding from the log give the same rows.
- Projecting live is idempotent and never goes back: a row is only overwritten by a fold of a
  higher version, whatever order concurrent writers commit in.
- `rebuild` replaces every row from the log in one transaction, reading the log once in
  (subject, sequence) order and writing in batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import IntegrityError, transaction

from events.models import StoredEvent
from orders.domain import Order, apply
from orders.models import OrderSummary
from orders.store import ORDER_ID_PREFIX

BATCH = 1000


def row_of(order: Order) -> dict[str, Any]:
    return {
        "customer_id": int(order.user_id) if order.user_id.isdigit() else None,
        "status": order.status,
        "payment": order.payment,
        "stock": order.stock,
        "total": order.total,
        "currency": order.currency,
        "item_count": order.item_count,
        "city": order.shipping_address.get("city", ""),
        "reason": order.reason,
        "version": order.version,
        "placed_at": order.placed_at,
        "last_change_at": order.changed_at,
    }


def project(order: Order) -> None:
    """Bring the order's row up to `order` (a fold of its stream), unless it is already newer."""
    if not order.status:
        return
    row = row_of(order)
    if OrderSummary.objects.filter(order_id=order.id, version__lt=order.version).update(**row):
        return
    if OrderSummary.objects.filter(order_id=order.id).exists():
        return  # at this version or newer already
    try:
        with transaction.atomic():
            OrderSummary.objects.create(order_id=order.id, **row)
    except IntegrityError:  # created concurrently; keep the newer of the two
        OrderSummary.objects.filter(order_id=order.id, version__lt=order.version).update(**row)


def folded_orders(chunk_size: int = 2000) -> Iterator[Order]:
    """Every order in the log, folded, reading each row once in (subject, sequence) order."""
    rows = (
        StoredEvent.objects.filter(subject__startswith=ORDER_ID_PREFIX, sequence__isnull=False)
        .order_by("subject", "sequence")
        .values_list("subject", "event_type", "data", "sequence", "timestamp")
        .iterator(chunk_size=chunk_size)
    )
    order: Order | None = None
    for subject, event_type, data, sequence, timestamp in rows:
        if order is None or order.id != subject:
            if order is not None:
                yield order
            order = Order(id=subject)
        order = apply(order, event_type, data, sequence, timestamp)
    if order is not None:
        yield order


@transaction.atomic
def rebuild() -> int:
    """Replace the read model with a projection of the whole log; returns the number of rows."""
    OrderSummary.objects.all().delete()
    batch: list[OrderSummary] = []
    count = 0
    for order in folded_orders():
        if not order.status:
            continue
        batch.append(OrderSummary(order_id=order.id, **row_of(order)))
        if len(batch) >= BATCH:
            OrderSummary.objects.bulk_create(batch)
            count += len(batch)
            batch = []
    OrderSummary.objects.bulk_create(batch)
    return count + len(batch)
