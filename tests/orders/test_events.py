"""OrderPlaced 2.2: 2.1 plus total and currency, published by orders; 2.1 and 1.0 are exact views of it."""

import pytest

from events.envelope import Envelope
from events.errors import InvalidEventData
from orders.events import OrderPlaced

ORDER_PLACED_2_2 = (
    b'{"eventType": "OrderPlaced", "eventVersion": "2.2", "timestamp": "2025-07-07T14:05:00Z", '
    b'"eventId": "8fc67c8d-921c-443a-a67a-b3aefaed3384", "source": "order-service", '
    b'"data": {"orderId": "ORD123456", "status": "Not_Shipped", '
    b'"items": [{"productId": "P001", "quantity": 2}], '
    b'"shippingAddress": {"city": "Hyderabad", "pincode": "000001"}, "userId": "USR789", '
    b'"total": "25.00", "currency": "INR"}, '
    b'"correlationId": "1f0c2a4e-0000-4000-8000-000000000001", "causationId": null, "subject": "ORD123456", "sequence": 1}'
)


def test_order_placed_2_2_round_trips_byte_for_byte_and_its_data_through_its_schema() -> None:
    envelope = Envelope.from_json(ORDER_PLACED_2_2)
    assert envelope.to_json() == ORDER_PLACED_2_2
    assert OrderPlaced.convert(envelope.data, "2.2", "2.2") == envelope.data
    assert OrderPlaced.latest == "2.2"


def test_each_older_consumer_gets_its_exact_view_of_2_2() -> None:
    data = Envelope.from_json(ORDER_PLACED_2_2).data
    assert OrderPlaced.convert(data, "2.2", "2.1") == {k: v for k, v in data.items() if k not in ("total", "currency")}
    assert OrderPlaced.convert(data, "2.2", "1.0") == {"orderId": "ORD123456", "userId": "USR789", "orderStatus": "Not_Shipped"}


@pytest.mark.parametrize(
    "change, message",
    [({"total": "-1.00"}, "total"), ({"currency": "EURO"}, "currency"), ({"total": "1.005"}, "total")],
)
def test_a_bad_total_or_currency_is_refused(change: dict, message: str) -> None:
    data = {**Envelope.from_json(ORDER_PLACED_2_2).data, **change}
    with pytest.raises(InvalidEventData, match=message):
        OrderPlaced.validate(data, "2.2")
