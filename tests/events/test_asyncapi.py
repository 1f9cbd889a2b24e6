"""The event catalogue: the AsyncAPI 3.0 document generated from the registry, served as JSON and as a page."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from events import asyncapi, registry, subscriptions
from tests.support import Ping

COMPONENT_KEY = re.compile(r"^[a-zA-Z0-9.\-_]+$")
ACTIONS = {"send", "receive"}


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve (no {part!r})"
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in refs(item)]
    return []


def check_structure(doc: dict[str, Any]) -> None:
    """The AsyncAPI 3.0 rules this document relies on (no JSON Schema of AsyncAPI is available offline)."""
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    for server in doc["servers"].values():
        assert server["host"] and server["protocol"] == "amqp"
    for section in doc["components"].values():
        assert all(COMPONENT_KEY.match(key) for key in section), [k for k in section if not COMPONENT_KEY.match(k)]
    for channel in doc["channels"].values():
        assert isinstance(channel["address"], str)
        binding = channel["bindings"]["amqp"]
        assert binding["is"] in ("routingKey", "queue")
        assert ("exchange" in binding) == (binding["is"] == "routingKey") and ("queue" in binding) == (binding["is"] == "queue")
        for message in channel["messages"].values():
            assert set(message) == {"$ref"} and message["$ref"].startswith("#/components/messages/")
    for name, operation in doc["operations"].items():
        assert operation["action"] in ACTIONS, name
        channel_ref = operation["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/")
        # An operation's messages are messages of its channel.
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel_ref + "/messages/"), (name, message)
    for message in doc["components"]["messages"].values():
        assert message["contentType"] == "application/json"
        assert message["payload"]["type"] == "object" and "data" in message["payload"]["properties"]
    # Every reference resolves inside the document.
    for ref in refs(doc):
        resolve(doc, ref)


def test_the_document_describes_every_type_version_converter_publisher_and_handler() -> None:
    doc = asyncapi.document()
    check_structure(doc)

    placed = doc["channels"]["orders.OrderPlaced"]
    assert placed["address"] == "orders.OrderPlaced"
    assert placed["bindings"]["amqp"]["exchange"] == {
        "name": "events",
        "type": "topic",
        "durable": True,
        "autoDelete": False,
        "vhost": "/",
    }
    assert sorted(placed["messages"]) == ["OrderPlaced.v1.0", "OrderPlaced.v2.1", "OrderPlaced.v2.2"]
    assert placed["x-publisher"] == "orders" and placed["x-latest-version"] == "2.2"
    assert [(c["from"], c["to"], c["kind"]) for c in placed["x-converters"]] == [
        ("2.1", "1.0", "downcaster"),
        ("2.2", "2.1", "downcaster"),
    ]
    assert {(s["service"], s["version"]) for s in placed["x-subscribers"]} == {
        ("payments", "2.2"),
        ("inventory", "1.0"),
        ("shipping", "2.1"),
    }
    assert doc["operations"]["send.orders.OrderPlaced"]["x-service"] == "orders"

    # Each version's message: the envelope, with `data` the pydantic model's JSON Schema and the AMQP headers.
    message = doc["components"]["messages"]["orders.OrderPlaced.v2.2"]
    envelope = message["payload"]
    assert envelope["properties"]["eventVersion"] == {"type": "string", "const": "2.2"}
    assert set(envelope["required"]) == {"eventType", "eventVersion", "timestamp", "eventId", "source", "data"}
    data = resolve(doc, envelope["properties"]["data"]["$ref"])
    model_schema = registry.get("OrderPlaced").schema("2.2").model_json_schema()
    assert set(data["properties"]) == set(model_schema["properties"])
    assert data["required"] == model_schema["required"]
    headers = resolve(doc, message["headers"]["$ref"])
    assert {"traceparent", "ce-id", "ce-type", "eventVersion"} <= set(headers["properties"])
    assert message["bindings"]["amqp"]["messageType"] == "OrderPlaced"

    # The payments handler reads payments.events, bound to the routing keys of its handlers.
    queue = doc["channels"]["queue.payments.events"]
    assert queue["address"] == "payments.events"
    assert queue["bindings"]["amqp"]["queue"]["name"] == "payments.events"
    assert "orders.OrderPlaced" in queue["x-routing-keys"]
    charge = doc["operations"]["receive.payments.handlers.charge_order"]
    assert charge["action"] == "receive" and charge["x-version"] == "2.2" and charge["x-service"] == "payments"
    assert charge["channel"] == {"$ref": "#/channels/queue.payments.events"}

    # An ordered handler reads <service>.events.ordered, read by one consumer at a time.
    ordered = [op for op in doc["operations"].values() if op["action"] == "receive" and op["x-ordered"]]
    assert ordered, "the project has ordered handlers (analytics)"
    for operation in ordered:
        channel = resolve(doc, operation["channel"]["$ref"])
        assert channel["address"].endswith(".events.ordered") and channel["x-single-active-consumer"] is True
        assert channel["bindings"]["amqp"]["queue"]["name"] == channel["address"]


def test_a_new_subscription_shows_up_in_the_document() -> None:
    def audit(event: Any) -> None:
        pass

    subscriptions.subscribe(Ping, version="2.0", service="testsvc")(audit)
    name = f"{audit.__module__}.{audit.__qualname__}"
    try:
        doc = asyncapi.document()
        check_structure(doc)
        assert doc["operations"][f"receive.{name}"]["x-version"] == "2.0"
        assert {"service": "testsvc", "handler": name, "version": "2.0", "queue": "testsvc.events", "ordered": False} in doc[
            "channels"
        ]["tests.Ping"]["x-subscribers"]
    finally:
        subscriptions.unregister(name)
    assert f"receive.{name}" not in asyncapi.document()["operations"]


def test_served_as_json_without_a_token(client: Client) -> None:
    response = client.get("/api/events/asyncapi.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    doc = response.json()
    check_structure(doc)
    assert doc == asyncapi.document()


def test_the_json_is_listed_in_the_openapi_document(client: Client) -> None:
    assert "/api/events/asyncapi.json" in client.get("/api/openapi.json").json()["paths"]


def test_the_readable_page_lists_types_fields_converters_and_handlers_and_loads_nothing_from_elsewhere(client: Client) -> None:
    response = client.get("/events/catalogue/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert 'id="orders.OrderPlaced"' in page and "Version 2.2" in page
    assert "payments.handlers.charge_order" in page and "downcaster" in page
    assert "shippingAddress.city" in page  # nested fields, flattened
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert 'href="/api/events/asyncapi.json"' in page


def test_the_page_is_read_only(client: Client) -> None:
    assert client.post("/events/catalogue/").status_code == 405


@pytest.mark.parametrize("path", ["/api/events/asyncapi.json"])
def test_writing_to_the_document_is_a_json_405(client: Client, path: str) -> None:
    response = client.post(path)
    assert response.status_code == 405 and "detail" in response.json()
