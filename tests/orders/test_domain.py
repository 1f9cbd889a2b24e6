"""The Order's fold and the saga's decisions, as pure functions."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from orders.domain import CannotCancel, Decision, Order, can_cancel, fold, next_step

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PLACED = (
    "OrderPlaced",
    {
        "orderId": "ORD-1",
        "status": "Placed",
        "items": [{"productId": "P1", "quantity": 2}],
        "shippingAddress": {"city": "Pune", "pincode": "411001"},
        "userId": "7",
        "total": "25.00",
        "currency": "EUR",
    },
)


def stream(*events: tuple[str, dict]) -> list[tuple[str, dict, int, datetime]]:
    return [(kind, data, n, T0 + timedelta(seconds=n)) for n, (kind, data) in enumerate(events, start=1)]


def test_an_order_is_the_fold_of_its_events() -> None:
    order = fold(
        "ORD-1",
        stream(
            PLACED,
            ("StockReserved", {"orderId": "ORD-1", "items": []}),
            ("PaymentCaptured", {"orderId": "ORD-1", "paymentId": "9", "amount": "25.00", "currency": "EUR"}),
            ("OrderConfirmed", {"orderId": "ORD-1"}),
        ),
    )
    assert (order.version, order.status, order.payment, order.stock) == (4, "confirmed", "captured", "reserved")
    assert (order.total, order.currency, order.item_count, order.user_id) == (Decimal("25.00"), "EUR", 2, "7")
    assert order.placed_at == T0 + timedelta(seconds=1) and order.changed_at == T0 + timedelta(seconds=4)


def test_an_event_type_the_fold_does_not_know_only_advances_the_version() -> None:
    order = fold("ORD-1", stream(PLACED, ("GiftWrapped", {"paper": "red"})))
    assert order.version == 2 and order.status == "placed"


@pytest.mark.parametrize("first, second", [("PaymentCaptured", "StockReserved"), ("StockReserved", "PaymentCaptured")])
def test_the_saga_confirms_once_both_payment_and_stock_are_in_in_either_order(first: str, second: str) -> None:
    facts = {
        "PaymentCaptured": {"orderId": "ORD-1", "paymentId": "9", "amount": "25", "currency": "EUR"},
        "StockReserved": {"orderId": "ORD-1", "items": []},
    }
    assert next_step(fold("ORD-1", stream(PLACED, (first, facts[first])))) is None
    both = fold("ORD-1", stream(PLACED, (first, facts[first]), (second, facts[second])))
    assert next_step(both) == Decision("OrderConfirmed")
    confirmed = fold("ORD-1", stream(PLACED, (first, facts[first]), (second, facts[second]), ("OrderConfirmed", {})))
    assert next_step(confirmed) is None  # a duplicate fact changes nothing


def test_the_saga_cancels_on_a_failed_payment_or_missing_stock_with_the_reason() -> None:
    failed = fold("ORD-1", stream(PLACED, ("PaymentFailed", {"orderId": "ORD-1", "reason": "card declined"})))
    assert next_step(failed) == Decision("OrderCancelled", "payment failed: card declined")
    missing = fold("ORD-1", stream(PLACED, ("OutOfStock", {"orderId": "ORD-1", "productIds": ["P1"]})))
    assert next_step(missing) == Decision("OrderCancelled", "out of stock: P1")
    cancelled = fold(
        "ORD-1", stream(PLACED, ("OutOfStock", {"orderId": "ORD-1", "productIds": ["P1"]}), ("OrderCancelled", {"reason": "x"}))
    )
    assert next_step(cancelled) is None


def test_only_orders_not_shipped_can_be_cancelled() -> None:
    assert can_cancel(fold("ORD-1", stream(PLACED))) is True
    assert can_cancel(fold("ORD-1", stream(PLACED, ("OrderCancelled", {"reason": "x"})))) is False
    with pytest.raises(CannotCancel, match="has shipped"):
        can_cancel(fold("ORD-1", stream(PLACED, ("OrderShipped", {"trackingNumber": "T"}))))
    with pytest.raises(CannotCancel, match="does not exist"):
        can_cancel(Order(id="ORD-2"))
