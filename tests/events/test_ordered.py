"""Ordered handlers: per subject in commit order, subjects in parallel, through retries and a worker killed midway."""

from __future__ import annotations

import random
import signal
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from kombu import Connection, Consumer, Queue

from events import publish
from events.envelope import Envelope
from events.models import DeadLetter, HandlerSkips, InboxEntry, StoredEvent
from events.ordered import lane_of
from notifications.models import Notification
from tests.conftest import relay_all
from tests.support import Late, Ping, Step, failures_left, read_deliveries, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _publish_steps(
    subjects: int, per_subject: int, *, mode: dict[tuple[int, int], str] | None = None, pause_ms: int = 0
) -> list[str]:
    """Publish `per_subject` steps for each subject, the subjects interleaved at random; returns the subjects."""
    names = [f"s{n}" for n in range(subjects)]
    plan = [(name, n) for name in names for n in range(1, per_subject + 1)]
    random.Random(7).shuffle(plan)
    next_n: dict[str, int] = defaultdict(lambda: 1)
    for name, _ in plan:  # keep each subject's own steps in order, interleave the subjects
        n = next_n[name]
        next_n[name] += 1
        data = {"n": n, "mode": (mode or {}).get((names.index(name), n), "ok"), "pause_ms": pause_ms}
        publish(Step, data, subject=name, sequence=n)
    return names


def _runs() -> dict[str, list[int]]:
    """Per subject, the steps in the order the handler committed them."""
    seen: dict[str, list[int]] = defaultdict(list)
    for body in Notification.objects.filter(kind="step").order_by("pk").values_list("body", flat=True):
        subject, n = body.rsplit(":", 1)
        seen[subject].append(int(n))
    return seen


def test_lanes_spread_subjects_and_keep_each_on_one() -> None:
    envelopes = [Envelope(event_type="Step", event_version="1.0", data={}, source="t", subject=f"s{n}") for n in range(200)]
    lanes = [lane_of(e, 4) for e in envelopes]
    assert set(lanes) == {0, 1, 2, 3}
    assert all(lane_of(e, 4) == lane for e, lane in zip(envelopes, lanes, strict=True))


def test_lanes_that_stop_neither_run_nor_report_done_what_they_have_not_handled() -> None:
    """What the consumer finds done it acks. Halted lanes (the worker leaving) report nothing they did not handle: a
    redelivered event waiting for its start to be recorded, or one submitted after the halt, goes back to the queue."""
    from events import subscriptions
    from events.ordered import Lanes, Work

    envelope = Envelope(event_type="Step", event_version="1.0", data={"n": 1}, source="t", subject="s0", sequence=1)
    handlers = [(subscriptions.get("tests.support.step_handler"), envelope)]
    lanes = Lanes(2, 10)
    lanes.halt()
    lanes._work([Work("testsvc", object(), envelope, handlers, lanes.epoch, redelivered=True)], alone=True)
    lanes.submit(Work("testsvc", object(), envelope, handlers, lanes.epoch))
    assert lanes.completed() == [] and not lanes.busy
    assert not Notification.objects.filter(kind="step").exists()


def test_the_ordered_queue_is_single_active_consumer_and_takes_only_ordered_keys() -> None:
    from events import topology

    queue = topology.ordered_queue("testsvc")
    assert queue.name == "testsvc.events.ordered"
    assert queue.queue_arguments["x-single-active-consumer"] is True
    keys = {b.routing_key for b in queue.bindings}
    assert {"tests.Step", "tests.Late"} <= keys
    assert "tests.Ping" not in keys
    assert "tests.Step" not in {b.routing_key for b in topology.event_queue("testsvc").bindings}


def test_each_subject_is_handled_in_order_while_subjects_run_in_parallel(worker: object, settings: Any) -> None:
    subjects = _publish_steps(12, 25)
    relay_all()

    wait_for(lambda: Notification.objects.filter(kind="step").count() == 300, timeout=60, message="300 steps")
    runs = _runs()
    assert set(runs) == set(subjects)
    for subject in subjects:
        assert runs[subject] == list(range(1, 26)), subject
    assert InboxEntry.objects.filter(handler="tests.support.step_handler").count() == 300


def test_a_failed_event_holds_its_subject_back_until_it_succeeds(worker: object) -> None:
    failures_left["s0:3"] = 2  # fails twice, then succeeds (max_attempts=3)
    _publish_steps(3, 6)
    relay_all()

    wait_for(lambda: Notification.objects.filter(kind="step").count() == 18, timeout=30, message="18 steps")
    runs = _runs()
    assert runs["s0"] == [1, 2, 3, 4, 5, 6]
    assert runs["s1"] == runs["s2"] == [1, 2, 3, 4, 5, 6]
    assert not DeadLetter.objects.exists()
    # One inbox row per event, in the order of handling: the rows of the events after the failed one, claimed with
    # their batch, were removed with the failure and written again when they ran.
    step_of = {str(e.event_id): (e.subject, e.sequence) for e in StoredEvent.objects.filter(event_type="Step")}
    rows = InboxEntry.objects.filter(handler="tests.support.step_handler").order_by("id").values_list("event_id", flat=True)
    assert len(rows) == 18
    for subject in ("s0", "s1", "s2"):
        assert [n for s, n in (step_of[event_id] for event_id in rows) if s == subject] == [1, 2, 3, 4, 5, 6], subject


def test_an_event_failing_every_time_is_a_dead_letter_and_its_subject_goes_on(worker: object) -> None:
    failures_left["s1:2"] = -1
    _publish_steps(2, 4)
    relay_all()

    dead = wait_for(lambda: DeadLetter.objects.filter(handler="tests.support.step_handler").first(), timeout=30)
    wait_for(lambda: Notification.objects.filter(kind="step").count() == 7, timeout=30, message="7 steps")
    assert dead.attempts == 3 and "step handler refuses s1:2" in dead.reason
    assert _runs()["s1"] == [1, 3, 4]
    assert _runs()["s0"] == [1, 2, 3, 4]


def test_a_given_up_event_that_comes_again_after_later_ones_is_not_run_after_them(worker: object) -> None:
    """Published again (a relay that crashed between the confirm and its mark), it must not run after s1:3 and s1:4."""
    failures_left["s1:2"] = -1
    _publish_steps(2, 4)
    relay_all()
    wait_for(lambda: Notification.objects.filter(kind="step").count() == 7, timeout=30, message="7 steps")
    failures_left["s1:2"] = 0  # it would succeed now: only its dead letter's replay may run it

    StoredEvent.objects.filter(subject="s1", sequence=2).update(published_at=None)
    publish(Step, {"n": 5, "mode": "ok", "pause_ms": 0}, subject="s1", sequence=5)
    relay_all()

    wait_for(lambda: Notification.objects.filter(kind="step").count() == 8, timeout=30, message="s1:5")
    assert _runs()["s1"] == [1, 3, 4, 5]
    assert DeadLetter.objects.get().handler == "tests.support.step_handler"


def test_late_events_are_skipped_and_counted_per_handler(worker: object) -> None:
    old = timezone.now() - timedelta(minutes=5)
    for n in range(3):
        publish(Late, {"n": n}, subject="late", timestamp=old)
    publish(Late, {"n": 99}, subject="late")
    relay_all()

    wait_for(lambda: Notification.objects.filter(kind="late-ordered").exists(), timeout=20)
    skips = wait_for(lambda: HandlerSkips.objects.filter(handler="tests.support.late_ordered_handler").first(), timeout=10)
    assert skips.late == 3 and skips.service == "testsvc"
    assert list(Notification.objects.filter(kind="late-ordered").values_list("body", flat=True)) == ["99"]


def test_unordered_handlers_still_take_their_events_beside_ordered_ones(worker: object) -> None:
    publish(Ping, {"text": "beside"}, version="1.0")
    _publish_steps(1, 3)
    relay_all()

    wait_for(lambda: Notification.objects.filter(kind="ping-v1", body="beside").exists(), timeout=20)
    wait_for(lambda: Notification.objects.filter(kind="step").count() == 3, timeout=20)


def _worker_args(name: str = "ordered") -> list[str]:
    return ["-m", "celery", "-A", "project", "worker", "-Q", "testsvc", "-c", "2", "--loglevel", "INFO", "-n", f"{name}@%h"]


def test_a_worker_killed_midway_loses_nothing_and_keeps_the_order(purge: None, processes: Any) -> None:
    """Two workers consume the ordered queue (one active, one standing by); the active one is killed midway."""
    _publish_steps(8, 60, pause_ms=40)  # 480 steps over 4 lanes: about 5 s of work
    relay_all()
    first = processes("worker-1", *_worker_args("one"))
    second = processes("worker-2", *_worker_args("two"))
    wait_for(lambda: Notification.objects.filter(kind="step").exists(), timeout=60, message="a worker to start")
    wait_for(lambda: " ready." in second.output(), timeout=60, message="the second worker to stand by")
    handled = Notification.objects.filter(kind="step").count()
    assert handled < 480, "the first worker finished before the second one started: nothing left to take over"
    first.handle.send_signal(signal.SIGKILL)
    first.handle.wait()

    wait_for(lambda: Notification.objects.filter(kind="step").count() == 480, timeout=90, message="all 480 steps")
    runs = _runs()
    for subject, steps in runs.items():
        assert steps == list(range(1, 61)), subject
    assert not DeadLetter.objects.exists()


def test_the_ordered_consumer_leaving_gives_its_messages_back_before_the_next_consumer_gets_later_ones(
    amqp: Connection,
) -> None:
    """RabbitMQ activates the next single active consumer as soon as the active one cancels, and gives back the
    messages the cancelled one holds only when its channel closes. The ordered consumer closes instead of cancelling."""
    from events.consumer import HandOverInOrder

    name = f"test.handover.{uuid.uuid4().hex[:8]}"
    queue = Queue(name, durable=True, queue_arguments={"x-queue-type": "quorum", "x-single-active-consumer": True})
    producer = amqp.Producer()
    for n in range(30):
        producer.publish({"n": n}, routing_key=name, declare=[queue], serializer="json")
    held: list[Any] = []
    taken: list[int] = []
    with amqp.clone() as first, amqp.clone() as second:
        active = HandOverInOrder(first.channel(), queues=[queue], prefetch_count=10, on_message=held.append)
        standby = Consumer(second.channel(), queues=[queue], prefetch_count=50, on_message=lambda m: taken.append(m.payload["n"]))
        with active:
            while len(held) < 10:
                first.drain_events(timeout=5)
            standby.consume()
            read_deliveries(second, 0.3)
            assert taken == [], "the standby consumer got messages while the other was active"
        wait_for(lambda: read_deliveries(second) or len(taken) == 30, timeout=10, message="all 30 at the next consumer")
        standby.cancel()
        second.default_channel.queue_delete(name)
    assert [message.payload["n"] for message in held] == list(range(10))
    assert taken == list(range(30)), "messages held by the consumer that left came back after later ones"


def test_a_worker_stopped_midway_hands_its_events_over_in_order(purge: None, processes: Any) -> None:
    """As a deploy stops workers: the active one gets SIGTERM (a warm shutdown) with events of every subject still
    prefetched or in its lanes, while the other stands by. The one taking over gets them back before any later one."""
    _publish_steps(8, 60, pause_ms=40)
    relay_all()
    first = processes("worker-1", *_worker_args("one"))
    second = processes("worker-2", *_worker_args("two"))
    wait_for(lambda: Notification.objects.filter(kind="step").exists(), timeout=60, message="a worker to start")
    wait_for(lambda: " ready." in second.output(), timeout=60, message="the second worker to stand by")
    assert Notification.objects.filter(kind="step").count() < 480, "the first worker finished before the second started"
    first.handle.send_signal(signal.SIGTERM)
    assert first.handle.wait(timeout=60) is not None

    wait_for(lambda: Notification.objects.filter(kind="step").count() == 480, timeout=90, message="all 480 steps")
    for subject, steps in _runs().items():
        assert steps == list(range(1, 61)), subject
    assert not DeadLetter.objects.exists()


def test_a_handler_that_ends_its_process_is_a_dead_letter_and_the_rest_flows(purge: None, processes: Any) -> None:
    _publish_steps(3, 5, mode={(1, 3): "exit"})
    relay_all()
    started = []

    def a_worker_running() -> bool:
        if not started or started[-1].handle.poll() is not None:
            started.append(processes(f"worker-{len(started) + 1}", *_worker_args()))
        return DeadLetter.objects.filter(handler="tests.support.step_handler").exists()

    wait_for(a_worker_running, timeout=120, interval=0.5, message="the dead letter")
    dead = DeadLetter.objects.get(handler="tests.support.step_handler")
    wait_for(lambda: Notification.objects.filter(kind="step").count() == 14, timeout=60, message="14 steps")
    assert "without finishing" in dead.reason and dead.event_id
    runs = _runs()
    assert runs["s1"] == [1, 2, 4, 5]
    assert runs["s0"] == runs["s2"] == [1, 2, 3, 4, 5]
    assert len(started) <= 1 + 3 + 1, [p.output()[-500:] for p in started]
