"""Faults of the processes: workers and relays killed, stopped, and poisoned, under load through the real flows."""

from __future__ import annotations

import os
import signal
import time

import pytest

from events.models import DeadLetter, InboxEntry, StoredEvent
from notifications.models import Notification
from tests.chaos import load
from tests.chaos.events import Poison
from tests.chaos.harness import Stack, assert_clean, drain
from tests.support import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

BURST = int(os.environ.get("CHAOS_BURST", "20000"))


def work_started(count: int = 1) -> bool:
    return Notification.objects.filter(kind="chaos-work").count() >= count


def test_1_worker_main_process_sigkilled_mid_batch(stack: Stack) -> None:
    stack.relay()
    victim = stack.worker("all", load.ALL)
    load.mixed()
    load.work(60, seconds=0.1)
    wait_for(lambda: work_started(5), timeout=120, message="handlers under way")
    pool = victim.children()
    fault = time.monotonic()
    victim.kill()  # the main process; its pool processes are orphaned
    stack.worker("all-again", load.ALL)
    figures = drain(stack, "1 worker main process SIGKILL mid-batch", since=fault)
    for pid in pool:  # orphans that did not end by themselves
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert_clean(figures)
    assert figures.dead_letters == 0


def test_2_pool_child_sigkilled(stack: Stack) -> None:
    stack.relay()
    worker = stack.worker("all", load.ALL, concurrency=2)
    load.mixed()
    load.work(60, seconds=0.1)
    wait_for(lambda: work_started(5), timeout=120, message="handlers under way")
    children = worker.children()
    assert children, "no pool processes"
    fault = time.monotonic()
    for child in children:  # each pool process, the busy one among them; the main process starts new ones
        os.kill(child, signal.SIGKILL)
    figures = drain(stack, "2 pool child SIGKILL", since=fault)
    assert_clean(figures)
    assert figures.dead_letters == 0
    assert "WorkerLostError" in worker.output() or "exited with 'signal 9" in worker.output()


def test_3_worker_stopped_longer_than_the_heartbeat_then_continued(stack: Stack) -> None:
    stack.relay()
    frozen = stack.worker("frozen", load.ALL, concurrency=1)
    stack.worker("other", load.ALL, concurrency=1)
    load.mixed()
    load.work(40, seconds=0.1)
    wait_for(lambda: work_started(3), timeout=120, message="handlers under way")
    fault = time.monotonic()
    frozen.send(signal.SIGSTOP)
    time.sleep(4 * 3)  # three heartbeats of 4 s: RabbitMQ closes its connections and hands its messages on
    frozen.send(signal.SIGCONT)
    figures = drain(stack, "3 worker SIGSTOP > heartbeat, SIGCONT", since=fault)
    assert_clean(figures)
    assert figures.dead_letters == 0
    assert frozen.alive(), "the continued worker died"


def test_5_relay_killed_between_confirm_and_mark(stack: Stack) -> None:
    stack.worker("all", load.ALL)
    load.mixed()
    dying = stack._start("relay-dying", ["manage.py", "chaos_relay", "--die-after-confirm", "2", "--lease", "3"])
    fault = time.monotonic()
    dying.handle.wait(timeout=120)
    assert dying.handle.returncode == -signal.SIGKILL, dying.output()
    assert "before marking them" in dying.output()
    confirmed_not_marked = StoredEvent.objects.filter(published_at__isnull=True).exclude(claimed_by="").count()
    assert confirmed_not_marked > 0, "nothing was left confirmed and unmarked: nothing was tested"
    stack.relay()
    figures = drain(stack, "5 relay killed between confirm and mark", since=fault)
    assert_clean(figures)
    assert figures.redeliveries > 0, "the republished events should have reached the handlers as duplicates"


def test_12_poison_handler_is_dead_lettered_and_everything_else_flows(stack: Stack) -> None:
    from django.db import transaction

    from events import publish

    stack.relay()
    stack.worker("all", load.ALL, concurrency=2)
    with transaction.atomic():
        raising = publish(Poison, {"key": "p-raise", "mode": "raise"})
        exiting = publish(Poison, {"key": "p-exit", "mode": "exit"})
    fault = time.monotonic()
    load.mixed()
    figures = drain(stack, "12 poison handler (exception; process exit)", since=fault, timeout=240)
    assert_clean(figures)
    raised = DeadLetter.objects.get(event_id=str(raising.event_id))
    assert raised.stage == "handler" and "poison p-raise" in raised.reason and raised.attempts == 2
    exited = DeadLetter.objects.get(event_id=str(exiting.event_id))
    assert exited.stage == "handler" and "died" in exited.reason
    assert figures.dead_letters == 2
    given_up = InboxEntry.objects.filter(event_id__in=[str(raising.event_id), str(exiting.event_id)])
    assert given_up.count() == 2 and all(entry.dead_lettered for entry in given_up)


@pytest.mark.timeout(1800)
def test_18_burst_across_the_services_with_a_worker_killed_and_restarted_midway(stack: Stack) -> None:
    stack.relay()
    stack.worker("flows", [s for s in load.ALL if s != "chaos"], concurrency=2)
    marks = stack.worker("marks", ["chaos"], concurrency=2)
    started = time.monotonic()
    load.mixed(scale=2)
    load.marks(BURST, subjects=50, prefix="b")
    wait_for(lambda: InboxEntry.objects.filter(handler__endswith="record_mark").count() >= BURST // 3, timeout=600)
    fault = time.monotonic()
    marks.kill()
    stack.worker("marks-again", ["chaos"], concurrency=2)
    figures = drain(stack, f"18 burst of {BURST:,} events, worker killed midway", since=fault, timeout=900)
    figures.details["total_seconds"] = [round(time.monotonic() - started, 1)]
    assert_clean(figures)
    assert figures.events >= BURST
