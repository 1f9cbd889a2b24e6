"""Batch handlers (`batch=True`): a task's events in one call, each still handled once, retried and dead-lettered alone."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytest
from django.db import connection, transaction

from events import publish
from events.envelope import Envelope
from events.handling import run_many
from events.models import DeadLetter, InboxEntry
from events.subscriptions import get
from events.topology import task_queue
from notifications.models import Notification
from tests.conftest import relay_all
from tests.support import Tally, Trail, another_worker_holding, calls, failures_left, pause, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TALLY = "tests.support.tally_batch_handler"


def _tallies(count: int, prefix: str = "t") -> list[str]:
    keys = [f"{prefix}{i}" for i in range(count)]
    with transaction.atomic():
        for key in keys:
            publish(Tally, {"key": key})
    return keys


def _handled() -> list[str]:
    return list(Notification.objects.filter(kind="tally").values_list("body", flat=True))


def test_the_events_of_a_task_reach_a_batch_handler_as_lists(worker: object) -> None:
    keys = _tallies(60)
    relay_all()

    wait_for(lambda: len(_handled()) == 60, timeout=30, message="60 tallies")
    assert sorted(_handled()) == sorted(keys)
    sizes = [int(b) for b in Notification.objects.filter(kind="tally-call").values_list("body", flat=True)]
    assert sum(sizes) == 60
    assert max(sizes) > 1, sizes  # 60 events published at once travel in fewer tasks than events
    assert InboxEntry.objects.filter(handler=TALLY).count() == 60
    assert InboxEntry.objects.filter(handler=TALLY, duration_ms__isnull=False).count() == 60


def test_a_batch_handler_never_sees_an_event_twice() -> None:
    subscription = get(TALLY)
    envelopes = [Envelope(event_type="Tally", event_version="1.0", data={"key": f"d{i}"}, source="tests") for i in range(5)]
    assert run_many(subscription, [(e, 1) for e in envelopes[:3]]) == (3, 0)
    # Delivered again with two new ones, and one of them twice in the same list.
    again = [*envelopes, envelopes[4]]
    assert run_many(subscription, [(e, 1) for e in again]) == (2, 4)
    assert sorted(_handled()) == [f"d{i}" for i in range(5)]
    assert InboxEntry.objects.filter(handler=TALLY).count() == 5


def test_a_failing_event_is_retried_alone_and_the_rest_of_its_batch_is_handled(worker: object) -> None:
    failures_left["f7"] = 2  # refused with its batch, then twice alone, then handled (max_attempts=3)
    keys = _tallies(20, prefix="f")
    relay_all()

    wait_for(lambda: len(_handled()) == 20, timeout=30, message="20 tallies")
    assert sorted(_handled()) == sorted(keys)
    assert not DeadLetter.objects.exists()
    assert InboxEntry.objects.get(handler=TALLY, event_id__in=_ids_of("f7")).attempt == 3
    assert all(calls[k] >= 1 for k in keys)


def test_an_event_failing_every_time_is_a_dead_letter_of_its_own(worker: object) -> None:
    failures_left["g3"] = -1
    keys = _tallies(12, prefix="g")
    relay_all()

    dead = wait_for(lambda: DeadLetter.objects.filter(handler=TALLY).first(), timeout=30, message="the dead letter")
    wait_for(lambda: len(_handled()) == 11, timeout=30, message="11 tallies")
    assert sorted(_handled()) == sorted(k for k in keys if k != "g3")
    assert dead.attempts == 3 and "tally refuses g3" in dead.reason
    assert str(dead.event_id) in _ids_of("g3")
    assert DeadLetter.objects.count() == 1


def test_an_ordered_batch_handler_gets_each_subject_in_order(worker: object) -> None:
    plan = [(f"s{i % 8}", i // 8 + 1) for i in range(8 * 30)]  # 8 subjects interleaved, 30 steps each
    with transaction.atomic():
        for subject, n in plan:
            publish(Trail, {"n": n}, subject=subject, sequence=n)
    relay_all()

    wait_for(lambda: Notification.objects.filter(kind="trail").count() == 240, timeout=60, message="240 trail steps")
    seen: dict[str, list[int]] = defaultdict(list)
    for body in Notification.objects.filter(kind="trail").order_by("pk").values_list("body", flat=True):
        subject, n = body.rsplit(":", 1)
        seen[subject].append(int(n))
    assert seen == {f"s{i}": list(range(1, 31)) for i in range(8)}
    sizes = [int(b) for b in Notification.objects.filter(kind="trail-call").values_list("body", flat=True)]
    assert sum(sizes) == 240 and max(sizes) > 1, sizes


def _ids_of(key: str) -> set[str]:
    from events.models import StoredEvent

    return {str(e.event_id) for e in StoredEvent.objects.filter(event_type="Tally") if e.data.get("key") == key}


def test_while_a_task_is_queued_the_next_batch_waits_for_it_and_grows(purge: None, processes: Any, monkeypatch: Any) -> None:
    """One pool process, busy with a slow task: the events arriving one by one meanwhile travel in a few tasks,
    not one task each."""
    monkeypatch.setenv("EVENTS_CONSUMER_MAX_HOLD_MS", "10000")
    worker = processes(
        "worker", "-m", "celery", "-A", "project", "worker", "-Q", "testsvc", "-c", "1", "-n", "hold@%h", "--loglevel", "INFO"
    )
    wait_for(lambda: " ready." in worker.output(), timeout=60, message="the worker")
    pause.apply_async((4.0,), queue=task_queue("testsvc"))
    for i in range(30):
        publish(Tally, {"key": f"h{i}"})
        relay_all()
        time.sleep(0.02)  # one by one, as a trickle

    wait_for(lambda: len(_handled()) == 30, timeout=60, message="30 tallies")
    sizes = [int(b) for b in Notification.objects.filter(kind="tally-call").values_list("body", flat=True)]
    assert sum(sizes) == 30
    assert len(sizes) <= 4, sizes  # perhaps the first alone (sent before the pause was taken), then the rest together


@pytest.mark.skipif(connection.vendor != "postgresql", reason="one statement leaves out what is there on PostgreSQL")
def test_an_event_another_worker_is_handling_meanwhile_is_left_to_it() -> None:
    subscription = get(TALLY)
    envelopes = [Envelope(event_type="Tally", event_version="1.0", data={"key": f"m{i}"}, source="tests") for i in range(3)]

    with another_worker_holding(lambda: run_many(subscription, [(envelopes[0], 1)])) as other:
        assert run_many(subscription, [(e, 1) for e in envelopes]) == (2, 1)

    assert other == [(1, 0)]

    assert sorted(_handled()) == ["m0", "m1", "m2"]
    assert InboxEntry.objects.filter(handler=TALLY).count() == 3
