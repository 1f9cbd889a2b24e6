import pytest

from events import registry
from events.errors import ConversionError, InvalidEventData, UnknownEventType, UnknownEventVersion
from orders.events import OrderPlaced
from tests.support import Ping

ORDER_2_1 = {
    "orderId": "ORD1",
    "status": "Not_Shipped",
    "items": [{"productId": "P001", "quantity": 2}],
    "shippingAddress": {"city": "Hyderabad", "pincode": "000001"},
}


def test_an_event_type_is_found_by_name_with_its_routing_key_and_newest_version() -> None:
    assert registry.get("OrderPlaced") is OrderPlaced
    assert OrderPlaced.routing_key == "orders.OrderPlaced"
    assert OrderPlaced.latest == "2.2"


def test_unknown_names_and_versions_are_refused_with_the_reason() -> None:
    with pytest.raises(UnknownEventType, match="unknown event type 'OrderTeleported'"):
        registry.get("OrderTeleported")
    with pytest.raises(UnknownEventVersion, match=r"OrderPlaced has no version '3.0' \(known: 1.0, 2.1, 2.2\)"):
        OrderPlaced.convert(ORDER_2_1, "3.0", "1.0")


def test_upcast_and_downcast_follow_the_registered_converters() -> None:
    assert Ping.convert({"text": "hi"}, "1.0", "2.0") == {"message": "hi", "priority": 0}
    assert Ping.convert({"message": "hi", "priority": 3}, "2.0", "1.0") == {"text": "hi"}
    assert Ping.convert({"text": "hi"}, "1.0", "1.0") == {"text": "hi"}


def test_order_placed_2_1_has_a_1_0_view_only_when_it_carries_the_user() -> None:
    assert OrderPlaced.convert({**ORDER_2_1, "userId": "U7"}, "2.1", "1.0") == {
        "orderId": "ORD1",
        "userId": "U7",
        "orderStatus": "Not_Shipped",
    }
    with pytest.raises(ConversionError, match="no exact 1.0 view"):
        OrderPlaced.convert(ORDER_2_1, "2.1", "1.0")


def test_there_is_no_upcast_from_the_thin_order_placed() -> None:
    with pytest.raises(ConversionError, match="no conversion from OrderPlaced 1.0 to 2.1"):
        OrderPlaced.convert({"orderId": "O", "userId": "U", "orderStatus": "s"}, "1.0", "2.1")


def test_data_that_does_not_match_its_version_is_refused() -> None:
    with pytest.raises(InvalidEventData, match=r"data does not match OrderPlaced 2.1: items: Field required"):
        OrderPlaced.validate({k: v for k, v in ORDER_2_1.items() if k != "items"}, "2.1")


def test_a_name_cannot_be_declared_twice_for_different_topics() -> None:
    with pytest.raises(ValueError, match="already declared by tests.Ping"):
        registry.event_type("other", "Ping", versions={"1.0": registry.EventSchema})
