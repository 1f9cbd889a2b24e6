"""The single active relay (EVENTS_RELAY_SINGLE_ACTIVE, PostgreSQL): one relay publishes, the others stand by."""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest
from django.db import connection, connections, transaction
from kombu import Connection

from events import publish
from events.models import StoredEvent
from events.relay import Relay
from tests.conftest import RelayThread, relay_all
from tests.support import Ping, publish_subjects, received_sequences, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the single active relay holds a PostgreSQL advisory lock")


def _all_published() -> bool:
    return not StoredEvent.objects.filter(published_at__isnull=True).exists()


def _relay(**kwargs: Any) -> Relay:
    return Relay(wake_address="", batch_size=10, poll_seconds=0.02, single_active=True, **kwargs)


def test_one_relay_publishes_while_the_other_stands_by_then_takes_over(amqp: Connection, purge: None) -> None:
    publish_subjects(8, 10)
    first, second = _relay(), _relay()
    active = RelayThread(first)
    active.__enter__()
    try:
        wait_for(_all_published, timeout=30, message="the first relay to publish")
        with RelayThread(second):
            publish_subjects(8, 10, first=11)
            wait_for(_all_published, timeout=30, message="the active relay to publish the second lot")
            # It stood by (it may try the lock only after the active relay has published everything).
            wait_for(lambda: second._lock_session is False, timeout=30, message="the second relay to stand by")
            seen, total = received_sequences(amqp, first_only=True)
            assert total == 160  # one relay: each event once
            active.__exit__()  # its database session ends, and with it the lock
            publish_subjects(8, 10, first=21)
            wait_for(_all_published, timeout=30, message="the standby to take over")
            assert second._lock_session not in (None, False)
    finally:
        active.__exit__()
    more, _ = received_sequences(amqp, first_only=True)
    for subject, sequences in more.items():
        seen[subject] += [n for n in sequences if n not in seen[subject]]
    assert dict(seen) == {f"agg-{s}": list(range(1, 31)) for s in range(8)}


def test_rows_in_flight_are_not_read_twice_and_every_row_is_published_once(amqp: Connection, purge: None) -> None:
    publish_subjects(5, 23)
    assert relay_all(_relay()) == 115
    seen, total = received_sequences(amqp, first_only=True)
    assert total == 115
    assert dict(seen) == {f"agg-{s}": list(range(1, 24)) for s in range(5)}


def test_a_transaction_committing_late_is_published(amqp: Connection, purge: None) -> None:
    written, commit = threading.Event(), threading.Event()

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                publish(Ping, {"text": "late"}, version="1.0", subject="late", sequence=1)  # takes the lower position
                written.set()
                commit.wait(30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert written.wait(30)
    publish_subjects(3, 4)  # later positions, committed first
    relay = _relay()
    assert relay_all(relay) == 12
    commit.set()
    thread.join(30)
    assert relay_all(relay) == 1
    seen, total = received_sequences(amqp, first_only=True)
    assert total == 13 and seen["late"] == [1]


def test_the_standby_process_takes_over_when_the_active_one_is_killed(
    amqp: Connection, purge: None, processes: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("EVENTS_RELAY_SINGLE_ACTIVE", "true")
    monkeypatch.setenv("EVENTS_RELAY_WAKE_ADDRESS", "")
    first = processes("relay-1", "manage.py", "relay")
    wait_for(lambda: "is the active relay" in first.output(), timeout=60, message="the first relay to be active")
    second = processes("relay-2", "manage.py", "relay")
    wait_for(lambda: "stands by" in second.output(), timeout=60, message="the second relay to stand by")
    publish_subjects(4, 10)
    wait_for(_all_published, timeout=30, message="the active relay to publish")
    first.handle.send_signal(signal.SIGKILL)
    first.handle.wait(10)
    publish_subjects(4, 10, first=11)
    wait_for(_all_published, timeout=60, message="the standby to take over")
    assert "is the active relay" in second.output()
    seen, _ = received_sequences(amqp, first_only=True)
    assert dict(seen) == {f"agg-{s}": list(range(1, 21)) for s in range(4)}
