from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from events import streams
from events.streams import NewEvent
from inventory import clients
from inventory.events import OutOfStock, OutOfStockV1, StockLine, StockReleased, StockReleasedV1, StockReserved, StockReservedV1
from inventory.models import Reservation, Stock


@transaction.atomic
def stock_reserve(*, order_id: str, items: Sequence[dict[str, Any]], event_data: dict[str, Any] | None = None) -> Reservation:
    """Reserve every item of an order, or none: two orders for the last unit, exactly one gets it.

    Each line is taken with one conditional UPDATE (available >= quantity), which the database
    serialises per product row; a line that finds too little rolls the others back.
    """
    existing = Reservation.objects.filter(order_id=order_id).first()
    if existing is not None:
        return existing
    missing: list[str] = []
    try:
        with transaction.atomic():
            for line in items:
                taken = Stock.objects.filter(sku=line["productId"], available__gte=line["quantity"]).update(
                    available=F("available") - line["quantity"]
                )
                if not taken:
                    missing.append(line["productId"])
            if missing:
                raise _Missing
    except _Missing:
        pass
    status = Reservation.Status.OUT_OF_STOCK if missing else Reservation.Status.RESERVED
    try:
        with transaction.atomic():
            return Reservation.objects.create(
                order_id=order_id, status=status, items=list(items), missing=missing, event_data=event_data or {}
            )
    except IntegrityError:  # reserved concurrently for the same order: the first one stands
        if not missing:
            raise  # roll back our units too
        return Reservation.objects.get(order_id=order_id)


class _Missing(Exception):
    pass


def _lines(items: Sequence[dict[str, Any]]) -> list[StockLine]:
    return [StockLine(productId=line["productId"], quantity=line["quantity"]) for line in items]


@transaction.atomic
def stock_reserve_for_order(*, order_id: str, event_data: dict[str, Any]) -> Reservation | None:
    """OrderPlaced 1.0: fetch the items from the orders API, reserve them, record the outcome in the order's stream."""
    if Reservation.objects.filter(order_id=order_id).exists():
        return Reservation.objects.get(order_id=order_id)
    order = clients.fetch_order(order_id)
    if order["status"] != "placed":  # cancelled meanwhile: nothing to reserve
        return Reservation.objects.create(order_id=order_id, status=Reservation.Status.CANCELLED, event_data=event_data)
    items = [{"productId": item["productId"], "quantity": item["quantity"]} for item in order["items"]]
    reservation = stock_reserve(order_id=order_id, items=items, event_data=event_data)
    if reservation.status == Reservation.Status.RESERVED:
        fact = NewEvent(StockReserved, StockReservedV1(orderId=order_id, items=_lines(items)))
    else:
        fact = NewEvent(OutOfStock, OutOfStockV1(orderId=order_id, productIds=reservation.missing))
    streams.append_to_end(order_id, [fact])
    return reservation


@transaction.atomic
def stock_release_for_order(*, order_id: str) -> Reservation:
    """OrderCancelled: give reserved units back; an order not reserved yet never will be."""
    reservation = Reservation.objects.select_for_update().filter(order_id=order_id).first()
    if reservation is None:
        try:
            with transaction.atomic():
                return Reservation.objects.create(order_id=order_id, status=Reservation.Status.CANCELLED)
        except IntegrityError:
            reservation = Reservation.objects.select_for_update().get(order_id=order_id)
    if reservation.status != Reservation.Status.RESERVED:
        return reservation
    for line in reservation.items:
        Stock.objects.filter(sku=line["productId"]).update(available=F("available") + line["quantity"])
    reservation.status = Reservation.Status.RELEASED
    reservation.save(update_fields=["status", "updated_at"])
    streams.append_to_end(order_id, [NewEvent(StockReleased, StockReleasedV1(orderId=order_id, items=_lines(reservation.items)))])
    return reservation
