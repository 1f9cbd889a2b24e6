"""Faults of the broker, on RabbitMQ nodes the suite starts itself (never the machine's shared one).

Faults 4, 8 and 8b kill and alarm the run's node (it is restarted and cleared before the next test).
Fault 16 has a node of its own with a low `consumer_timeout` (3 s, checked every half second), so
that a task held unacknowledged for longer than that would be taken back by the broker during the
test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from events.models import StoredEvent
from notifications.models import Notification
from tests.chaos import load, rabbit
from tests.chaos.events import Stubborn
from tests.chaos.handlers import attempts_file
from tests.chaos.harness import Stack, assert_clean, drain
from tests.support import wait_for

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not rabbit.available(), reason=rabbit.MISSING),
]

CONSUMER_TIMEOUT_MS = 3000
ADVANCED = f"[{{rabbit, [{{consumer_timeout, {CONSUMER_TIMEOUT_MS}}}, {{channel_tick_interval, 500}}]}}]."


@pytest.fixture(scope="module")
def strict_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rabbit.Node]:
    node = rabbit.Node(tmp_path_factory.mktemp("rabbit"), f"chaos-strict-{uuid.uuid4().hex[:6]}", advanced=ADVANCED)
    node.start()
    yield node
    node.kill()


@pytest.fixture
def strict_stack(request: pytest.FixtureRequest, strict_node: rabbit.Node, tmp_path: Path) -> Iterator[Stack]:
    """A stack on the node with the low consumer_timeout."""
    request.getfixturevalue("transactional_db")
    stack = Stack(logs=tmp_path, broker_url=strict_node.add_vhost(f"chaos-{uuid.uuid4().hex[:8]}"))
    yield stack
    stack.stop_all()


def published() -> int:
    return StoredEvent.objects.filter(published_at__isnull=False).count()


@pytest.mark.timeout(600)
def test_4_the_broker_killed_during_a_relay_burst_and_restarted(stack: Stack, main_node: rabbit.Node) -> None:
    node = main_node
    stack.relay()
    stack.worker("all", load.ALL)
    load.mixed()
    load.marks(3000, prefix="burst")
    wait_for(lambda: published() >= 300, timeout=120, message="the burst under way")
    fault = time.monotonic()
    node.kill()
    assert published() < StoredEvent.objects.count(), "the burst was over before the broker died: nothing was tested"
    time.sleep(3)
    node.start()
    figures = drain(stack, "4 broker SIGKILL during a relay burst, restarted", since=fault, timeout=300)
    assert_clean(figures)


def alarmed(node: rabbit.Node, kind: str) -> bool:
    return kind in node.ctl("eval", "rabbit_alarm:get_alarms().").stdout


def start_working(stack: Stack) -> None:
    """A relay and a worker for every service, seen handling five users."""
    stack.relay()
    stack.worker("all", load.ALL)
    load.users(5, prefix="before")
    wait_for(lambda: Notification.objects.count() >= 5, timeout=60, message="the stack working")


def test_8_memory_and_disk_alarms_block_publishers_and_nothing_is_lost(stack: Stack, main_node: rabbit.Node) -> None:
    node = main_node
    start_working(stack)
    fault = time.monotonic()
    for kind, raise_alarm, clear_alarm in [
        ("memory", ("set_vm_memory_high_watermark", "0.00001"), ("set_vm_memory_high_watermark", "0.4")),
        ("disk", ("set_disk_free_limit", "100000GB"), ("set_disk_free_limit", "50MB")),
    ]:
        node.ctl(*raise_alarm)
        wait_for(lambda kind=kind: alarmed(node, kind), timeout=60, message=f"the {kind} alarm")
        before = published()
        load.marks(200, prefix=f"{kind}-")
        load.users(5, prefix=f"{kind}-")
        time.sleep(5)
        assert published() <= before + 1, f"publishing went on under the {kind} alarm"
        node.ctl(*clear_alarm)
        wait_for(lambda kind=kind: not alarmed(node, kind), timeout=60, message=f"the {kind} alarm to clear")
        wait_for(lambda: published() == StoredEvent.objects.count(), timeout=120, message=f"publishing after the {kind} alarm")
    figures = drain(stack, "8 memory and disk alarms while publishing", since=fault)
    assert_clean(figures)


@pytest.mark.timeout(600)
def test_8b_a_disk_alarm_while_the_worker_is_busy_keeps_every_subject_in_order(stack: Stack, main_node: rabbit.Node) -> None:
    """The alarm comes while the worker is still handling a backlog and lasts longer than a few heartbeats: the
    worker's consumer blocks on a task publish, Celery's connection is dropped, and the worker's consumer restarts.
    The ordered events the old consumer held reach the new one before any later event."""
    node = main_node
    start_working(stack)
    fault = time.monotonic()
    load.marks(2000, prefix="busy-")
    load.users(100, prefix="busy-")
    wait_for(lambda: published() >= 1000, timeout=60, message="the backlog under way")
    node.ctl("set_disk_free_limit", "100000GB")
    wait_for(lambda: alarmed(node, "disk"), timeout=60, message="the disk alarm")
    load.marks(200, prefix="blocked-")
    load.users(20, prefix="blocked-")
    time.sleep(12)  # three heartbeats of the chaos settings
    node.ctl("set_disk_free_limit", "50MB")
    wait_for(lambda: not alarmed(node, "disk"), timeout=60, message="the disk alarm to clear")
    wait_for(lambda: published() == StoredEvent.objects.count(), timeout=120, message="publishing after the alarm")
    figures = drain(stack, "8b disk alarm while the worker is busy", since=fault)
    assert_clean(figures)


def attempt_times(stack: Stack, key: str) -> list[float]:
    path = stack.logs / attempts_file(key).name
    return [float(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.timeout(600)
def test_16_retries_longer_than_consumer_timeout_and_six_delayed_retries_arrive(strict_stack: Stack) -> None:
    stack = strict_stack
    from django.db import transaction

    from events import publish

    stack.env_extra.update({"EVENTS_RETRY_BACKOFF_SECONDS": "8", "EVENTS_RETRY_BACKOFF_MAX_SECONDS": "8"})
    stack.relay()
    slow = stack.worker("slow-retries", ["chaos"], concurrency=1)
    with transaction.atomic():
        publish(Stubborn, {"key": "late", "failures": 1})
    fault = time.monotonic()
    wait_for(lambda: Notification.objects.filter(kind="chaos-stubborn").exists(), timeout=60, message="the retry")
    first, second = attempt_times(stack, "late")
    # 8 s ceiling, jittered over its upper half (events/handling.py), counted by the broker in whole seconds.
    assert 3.5 <= second - first <= 9.5, f"the retry ran {second - first:.1f}s after the failure"
    figures = drain(stack, "16a retry delay 8 s > consumer_timeout 3 s", since=fault)
    assert_clean(figures)
    assert "PRECONDITION_FAILED" not in slow.output() and "delivery acknowledgement" not in slow.output()
    slow.stop()

    stack.env_extra.update({"EVENTS_RETRY_BACKOFF_SECONDS": "0.2", "EVENTS_RETRY_BACKOFF_MAX_SECONDS": "1"})
    stack.worker("fast-retries", ["chaos"], concurrency=1)
    with transaction.atomic():
        keys = [f"six-{i}" for i in range(5)]
        for key in keys:
            publish(Stubborn, {"key": key, "failures": 6})
    fault = time.monotonic()
    figures = drain(stack, "16b six retries through delayed delivery", since=fault, timeout=120)
    assert_clean(figures)
    for key in keys:
        assert len(attempt_times(stack, key)) == 7, f"{key}: {len(attempt_times(stack, key))} attempts"
    assert Notification.objects.filter(kind="chaos-stubborn").count() == 1 + len(keys)


def test_guest_is_refused_from_a_non_loopback_address(strict_node: rabbit.Node) -> None:
    node = strict_node
    """RabbitMQ's own check (`loopback_users`, default: guest) refuses guest from any address but loopback.

    Production defines its own user and never uses guest (see README, Reliability and security).
    """
    check = 'rabbit_access_control:check_user_loopback(<<"guest">>, {{{address}}}).'
    assert node.ctl("eval", check.format(address="10,1,2,3")).stdout.strip() == "not_allowed"
    assert node.ctl("eval", check.format(address="192,168,0,9")).stdout.strip() == "not_allowed"
    assert node.ctl("eval", check.format(address="127,0,0,1")).stdout.strip() == "ok"
