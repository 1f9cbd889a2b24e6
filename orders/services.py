import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from events import streams
from events.streams import ConcurrencyError, NewEvent
from orders import projections, store
from orders.domain import CannotCancel, Order, apply, can_cancel, next_step
from orders.events import (
    OrderCancelled,
    OrderCancelledV1,
    OrderConfirmed,
    OrderConfirmedV1,
    OrderItem,
    OrderPlaced,
    OrderPlacedV2_2,
    ShippingAddress,
)
from orders.models import Product

logger = logging.getLogger(__name__)

COMMAND_ATTEMPTS = 20

__all__ = ["CannotCancel", "OrderNotFound", "Quote", "order_advance", "order_cancel", "order_place", "order_quote"]


class OrderNotFound(Exception):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"no order {order_id!r}")
        self.order_id = order_id


@dataclass(frozen=True)
class Quote:
    items: tuple[OrderItem, ...]
    total: Decimal
    currency: str


def new_order_id() -> str:
    return f"{store.ORDER_ID_PREFIX}{uuid.uuid4().hex[:16].upper()}"


def order_quote(*, items: Sequence[tuple[str, int]]) -> Quote:
    """Price `items` (product id, quantity) from the catalogue; ValidationError says what is wrong."""
    if not items:
        raise ValidationError({"items": "An order needs at least one item."}, code="required")
    quantities: dict[str, int] = {}
    for product_id, quantity in items:
        if quantity < 1:
            raise ValidationError({"items": f"The quantity of {product_id} must be at least 1."}, code="min_value")
        quantities[product_id] = quantities.get(product_id, 0) + quantity
    products = Product.objects.in_bulk(list(quantities))
    unknown = sorted(set(quantities) - set(products))
    if unknown:
        raise ValidationError({"items": f"No such product: {', '.join(unknown)}."}, code="invalid")
    currencies = {product.currency for product in products.values()}
    if len(currencies) > 1:
        raise ValidationError({"items": f"Products of one order must share a currency, not {sorted(currencies)}."})
    total = sum((products[sku].price * quantity for sku, quantity in quantities.items()), Decimal("0"))
    return Quote(
        items=tuple(OrderItem(productId=sku, quantity=quantity) for sku, quantity in quantities.items()),
        total=total.quantize(Decimal("0.01")),
        currency=currencies.pop(),
    )


@transaction.atomic
def order_place(
    *,
    customer: AbstractBaseUser,
    items: Sequence[tuple[str, int]],
    shipping_address: dict[str, str],
    order_id: str | None = None,
) -> Order:
    """Place an order: its first event, OrderPlaced 2.2, starts the checkout saga."""
    quote = order_quote(items=items)
    address = ShippingAddress.model_validate(shipping_address)
    order_id = order_id or new_order_id()
    data = OrderPlacedV2_2(
        orderId=order_id,
        status="Placed",
        items=list(quote.items),
        shippingAddress=address,
        userId=str(customer.pk),
        total=quote.total,
        currency=quote.currency,
    )
    try:
        stored = streams.append(order_id, [NewEvent(OrderPlaced, data)], expected_version=0)
    except ConcurrencyError:
        raise ValidationError({"orderId": f"An order {order_id} exists already."}, code="unique") from None
    order = store.of_events(order_id, stored)
    projections.project(order)
    return order


def _execute(order_id: str, decide: Callable[[Order], list[NewEvent]]) -> Order:
    """Run a command on fresh state: load, decide, append at the loaded version; on a conflict, again.

    The load happens outside the append's transaction (inside the caller's, if any), so writers
    decide in parallel and the unique (subject, sequence) picks the one that wins; the other one
    decides again on the state the winner left.
    """
    for attempt in range(1, COMMAND_ATTEMPTS + 1):
        order = store.load(order_id)
        if not order.exists:
            raise OrderNotFound(order_id)
        events = decide(order)
        if not events:
            projections.project(order)
            return order
        try:
            with transaction.atomic():
                stored = streams.append(order_id, events, expected_version=order.version)
                for row in stored:
                    order = apply(order, row.event_type, row.data, row.sequence, row.timestamp)
                projections.project(order)
            return order
        except ConcurrencyError as exc:
            logger.info("order %s changed under a command (%s); deciding again (attempt %d)", order_id, exc, attempt)
    raise ConcurrencyError(order_id, order.version, streams.version_of(order_id))


def _cancelled(order: Order, reason: str) -> NewEvent:
    return NewEvent(OrderCancelled, OrderCancelledV1(orderId=order.id, userId=order.user_id, reason=reason))


def order_advance(*, order_id: str) -> Order:
    """The saga step: after a payment or stock fact, confirm or cancel the order if it is time to."""

    def decide(order: Order) -> list[NewEvent]:
        decision = next_step(order)
        if decision is None:
            return []
        if decision.event == "OrderCancelled":
            return [_cancelled(order, decision.reason)]
        return [
            NewEvent(
                OrderConfirmed,
                OrderConfirmedV1(orderId=order.id, userId=order.user_id, total=order.total, currency=order.currency),
            )
        ]

    return _execute(order_id, decide)


def order_cancel(*, order_id: str, reason: str) -> Order:
    """Cancel an order that has not shipped; payments refunds and inventory releases what they hold."""
    reason = reason.strip() or "cancelled"
    return _execute(order_id, lambda order: [_cancelled(order, reason)] if can_cancel(order) else [])


def order_project(*, order_id: str) -> Order:
    order = store.load(order_id)
    projections.project(order)
    return order
