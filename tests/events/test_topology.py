from io import StringIO

import pytest
from django.core.management import call_command

from events import topology


def test_every_name_on_the_broker_follows_the_design() -> None:
    queue = topology.event_queue("testsvc")

    assert queue.name == "testsvc.events"
    assert {b.routing_key for b in queue.bindings} == {
        "tests.Ping",
        "tests.Flaky",
        "tests.Shipment",
        "tests.Tick",
        "tests.Slow",
        "tests.Tricky",
        "tests.Outage",
        "tests.Tally",
    }
    assert {b.exchange.name for b in queue.bindings} == {"events"}
    assert queue.queue_arguments["x-dead-letter-exchange"] == "events.dlx"
    assert topology.dead_letter_queue("testsvc").name == "testsvc.events.dlq"
    audit = topology.dead_letter_audit_queue("testsvc")
    assert (audit.name, audit.exchange.name, audit.routing_key) == ("testsvc.events.dlq.audit", "events.dlx", "testsvc.events")
    task_queue = topology.task_queue("testsvc")
    assert (task_queue.name, task_queue.exchange.name, task_queue.exchange.type) == ("testsvc", "tasks", "topic")
    assert topology.events_exchange.arguments == {"alternate-exchange": "events.unrouted"}
    assert (topology.unrouted_exchange.name, topology.unrouted_exchange.type) == ("events.unrouted", "fanout")


def test_queues_are_quorum_queues_unless_classic_is_asked_for(settings: object) -> None:
    assert topology.event_queue("notifications").queue_arguments["x-queue-type"] == "quorum"

    settings.EVENTS_QUEUE_TYPE = "classic"
    assert "x-queue-type" not in topology.event_queue("notifications").queue_arguments


@pytest.mark.usefixtures("amqp")
def test_the_topology_command_declares_and_prints_it() -> None:
    out = StringIO()

    call_command("topology", stdout=out)

    text = out.getvalue()
    assert "exchange events (topic, durable, alternate-exchange=events.unrouted)" in text
    assert "queue notifications.events (quorum) <- events [users.UserRegistered]" in text
    assert "queue notifications.events.dlq (quorum) <- events.dlx [notifications.events]" in text
    assert "queue notifications (quorum) <- tasks [notifications]" in text
