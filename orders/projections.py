"""The read model (OrderSummary) as a projection of the event log.

Guarantees:
- A row is a pure function of its order's stream (`row_of(fold(stream))`), so projecting live
  and rebuilding from the log give the same rows.
- Projecting live is idempotent and never goes back: a row is only overwritten by a fold of a
  higher version, whatever order concurrent writers commit in.
- `rebuild` replaces every row from the log in one transaction, reading the log once in
  (subject, sequence) order and writing in batches (COPY on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import IntegrityError, connection, models, transaction

from events.models import StoredEvent
from orders.domain import Order, changes
from orders.models import OrderSummary
from orders.store import ORDER_ID_PREFIX

BATCH = 2000


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
    state: dict[str, Any] | None = None
    for subject, event_type, data, sequence, timestamp in rows:
        if state is None or state["id"] != subject:
            if state is not None:
                yield Order(**state)
            state = {"id": subject}
        state.update(changes(event_type, data, sequence, timestamp))
    if state is not None:
        yield Order(**state)


def _insert(rows: list[dict[str, Any]]) -> None:
    """Insert read-model rows in bulk: COPY on PostgreSQL, one prepared INSERT run for every row elsewhere.

    Values are adapted as the ORM would adapt them; its bulk_create costs more than reading the log.
    """
    if not rows:
        return
    fields = OrderSummary._meta.concrete_fields
    names = [f.attname for f in fields]
    table = connection.ops.quote_name(OrderSummary._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    if connection.vendor == "postgresql":  # COPY: psycopg adapts the values, PostgreSQL takes them in one stream
        with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[name] for name in names])
        return
    adapters: list[Any] = []
    for f in fields:
        if isinstance(f, models.DateTimeField):
            adapters.append(connection.ops.adapt_datetimefield_value)
        elif isinstance(f, models.DecimalField):
            adapters.append(lambda v, f=f: connection.ops.adapt_decimalfield_value(v, f.max_digits, f.decimal_places))
        else:
            adapters.append(None)
    sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
    params = [
        tuple(row[name] if adapt is None else adapt(row[name]) for name, adapt in zip(names, adapters, strict=True))
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


@transaction.atomic
def rebuild() -> int:
    """Replace the read model with a projection of the whole log; returns the number of rows."""
    OrderSummary.objects.all().delete()
    batch: list[dict[str, Any]] = []
    count = 0
    for order in folded_orders():
        if not order.status:
            continue
        batch.append({"order_id": order.id, **row_of(order)})
        if len(batch) >= BATCH:
            _insert(batch)
            count += len(batch)
            batch = []
    _insert(batch)
    return count + len(batch)
