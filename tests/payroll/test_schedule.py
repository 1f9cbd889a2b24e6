"""The monthly schedule, driven by beat's own scheduler under a controlled clock.

Each `DatabaseScheduler` here is one beat process (or one start of it); `tick()` is what beat's
loop calls. The tasks it sends land on the real broker (this run's vhost) and are then executed
here, so that "two beats" and "a restart across the due time" are what beat really does.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime
from typing import Any

import pytest
import time_machine
from celery.signals import beat_init
from django.db import connections
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler
from kombu import Connection

from payroll.models import PayrollRun, Payslip
from payroll.services import payroll_run
from payroll.tasks import run_due_payroll
from project.celery import app
from tests.payroll.factories import hire, recreate_schedules
from tests.payroll.test_services import assert_paid_once

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.broker]

SCHEDULE = "payroll: pay the month that ended"


@pytest.fixture(autouse=True)
def schedules() -> None:
    recreate_schedules()


def use_zone(settings: Any, zone: str, crontab: str = "0 9 1 * *") -> PeriodicTask:
    """As an operator would: PAYROLL_TIME_ZONE set, and the schedule edited in the admin to the same zone."""
    settings.PAYROLL_TIME_ZONE = zone
    minute, hour, day, month, weekday = crontab.split()
    task = PeriodicTask.objects.get(name=SCHEDULE)
    task.crontab = CrontabSchedule.objects.create(
        minute=minute, hour=hour, day_of_month=day, month_of_year=month, day_of_week=weekday, timezone=zone
    )
    task.save()
    # Only the payroll job: the hourly token job would be due at every jump of the clock.
    PeriodicTask.objects.exclude(name=SCHEDULE).update(enabled=False)
    return task


def beat_starts() -> DatabaseScheduler:
    """What a start of `celery beat` does: its scheduler, and the beat_init signal (payroll's catch-up check)."""
    scheduler = DatabaseScheduler(app=app, lazy=False)
    beat_init.send(sender=scheduler)
    return scheduler


def tick(scheduler: DatabaseScheduler) -> None:
    """Beat's loop: tick until nothing more is due now."""
    for _ in range(10):
        if scheduler.tick() != 0:
            return
    raise AssertionError("beat kept finding due entries")


def sent_payroll_tasks(amqp: Connection) -> list[dict[str, Any]]:
    """Drain the payroll task queue: the tasks beat sent (name and arguments)."""
    tasks = []
    while (message := amqp.default_channel.basic_get("payroll", no_ack=True)) is not None:
        args, kwargs, _ = json.loads(message.body)
        tasks.append(
            {
                "task": message.headers["task"],
                "args": args,
                "kwargs": kwargs,
                "name": message.headers.get("periodic_task_name") or "catch-up",
            }
        )
    return tasks


def execute(tasks: list[dict[str, Any]]) -> None:
    """Run the sent tasks at the same time, as workers would."""
    assert all(t["task"] == "payroll.run_due" for t in tasks)
    errors: list[BaseException] = []

    def run(kwargs: dict[str, Any]) -> None:
        try:
            run_due_payroll(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(t.get("kwargs", {}),)) for t in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors


def test_the_migration_created_the_schedule_in_the_configured_zone() -> None:
    task = PeriodicTask.objects.get(name=SCHEDULE)
    assert (task.task, task.queue, task.enabled) == ("payroll.run_due", "payroll", True)
    crontab = task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year, crontab.day_of_week) == (
        "0",
        "9",
        "1",
        "*",
        "*",
    )
    assert str(crontab.timezone) == "UTC"
    limits = PeriodicTask.objects.get(task="accounts.restore_token_limits")
    assert (limits.queue, limits.crontab.minute, limits.crontab.hour, str(limits.crontab.timezone)) == (
        "accounts",
        "0",
        "*",
        "UTC",
    )


def test_two_beats_at_the_due_time_send_the_job_twice_and_the_month_is_paid_once(
    settings: Any, amqp: Connection, purge: None
) -> None:
    employees = hire(40)
    with time_machine.travel(datetime(2026, 11, 1, 7, 59, tzinfo=UTC), tick=True) as clock:  # 08:59 in Berlin
        use_zone(settings, "Europe/Berlin")
        beats = [beat_starts(), beat_starts()]
        for beat in beats:
            tick(beat)
        checks = sent_payroll_tasks(amqp)
        assert [t["name"] for t in checks] == ["catch-up", "catch-up"]
        execute(checks)  # no payroll history yet: a fresh installation waits for its first pay day
        assert not PayrollRun.objects.exists()

        clock.move_to(datetime(2026, 11, 1, 8, 0, 1, tzinfo=UTC))  # 09:00:01 in Berlin (CET)
        for beat in beats:
            tick(beat)
        tasks = sent_payroll_tasks(amqp)
        assert [t["name"] for t in tasks] == [SCHEDULE, SCHEDULE]  # each beat sends it: the job must be idempotent
        execute(tasks)

    assert PayrollRun.objects.get().period == date(2026, 10, 1)
    assert_paid_once(employees)


def test_the_due_time_follows_the_zone_across_the_end_of_summer_time(settings: Any, amqp: Connection, purge: None) -> None:
    hire(3)
    # Last paid on 1 October at 09:00 summer time (07:00 UTC); the clocks go back on 25 October.
    with time_machine.travel(datetime(2026, 9, 30, 12, 0, tzinfo=UTC), tick=True) as clock:
        use_zone(settings, "Europe/Berlin")
        clock.move_to(datetime(2026, 10, 1, 7, 0, 1, tzinfo=UTC))
        beat = beat_starts()
        tick(beat)
        execute(sent_payroll_tasks(amqp))
        assert PayrollRun.objects.get().period == date(2026, 9, 1)

        clock.move_to(datetime(2026, 11, 1, 7, 30, tzinfo=UTC))  # 09:30 summer time, but 08:30 in Berlin now
        tick(beat)
        assert sent_payroll_tasks(amqp) == []

        clock.move_to(datetime(2026, 11, 1, 8, 0, 1, tzinfo=UTC))  # 09:00:01 winter time
        tick(beat)
        tasks = sent_payroll_tasks(amqp)
        assert len(tasks) == 1
        execute(tasks)

        clock.move_to(datetime(2026, 11, 1, 9, 0, 1, tzinfo=UTC))
        tick(beat)
        assert sent_payroll_tasks(amqp) == []
    assert list(PayrollRun.objects.values_list("period", "status")) == [
        (date(2026, 10, 1), "completed"),
        (date(2026, 9, 1), "completed"),
    ]


def test_a_month_that_ends_earlier_in_the_zone_than_in_utc_is_paid_on_the_zones_first(
    settings: Any, amqp: Connection, purge: None
) -> None:
    employees = hire(2)
    with time_machine.travel(datetime(2026, 10, 31, 19, 0, tzinfo=UTC), tick=True) as clock:  # 08:00 on 1 Nov there
        use_zone(settings, "Pacific/Auckland")  # UTC+13 in October and November
        beat = beat_starts()
        tick(beat)
        execute(sent_payroll_tasks(amqp))  # the start's catch-up check: no history, nothing paid
        assert not PayrollRun.objects.exists()

        clock.move_to(datetime(2026, 10, 31, 20, 0, 1, tzinfo=UTC))  # 09:00:01 on 1 Nov there, 31 Oct in UTC
        tick(beat)
        execute(sent_payroll_tasks(amqp))

    assert PayrollRun.objects.get().period == date(2026, 10, 1)
    assert_paid_once(employees)


def test_beat_down_at_the_due_time_catches_up_the_missed_month_once_when_it_starts(
    settings: Any, amqp: Connection, purge: None
) -> None:
    employees = hire(5)
    with time_machine.travel(datetime(2026, 10, 28, 12, 0, tzinfo=UTC), tick=True) as clock:
        use_zone(settings, "UTC")
        payroll_run(period=date(2026, 9, 1))  # September was paid: there is a history to continue
        beat = beat_starts()
        tick(beat)
        execute(sent_payroll_tasks(amqp))  # the start's check: September is paid, October not due
        beat.close()  # beat stops, and stays down over 1 November 09:00
        assert PayrollRun.objects.count() == 1

        clock.move_to(datetime(2026, 11, 3, 15, 0, tzinfo=UTC))
        beat = beat_starts()
        tick(beat)
        tasks = sent_payroll_tasks(amqp)
        assert [t["name"] for t in tasks] == ["catch-up"]  # beat itself does not run the missed crontab entry
        execute(tasks)
        assert PayrollRun.objects.get(period=date(2026, 10, 1)).status == "completed"

        restarted = beat_starts()  # later starts, or a second beat: the month is found paid
        tick(restarted)
        tasks = sent_payroll_tasks(amqp)
        assert len(tasks) == 1
        execute(tasks * 2)

    assert list(PayrollRun.objects.values_list("period", flat=True)) == [date(2026, 10, 1), date(2026, 9, 1)]
    assert_paid_once(employees)  # October, once
    assert Payslip.objects.count() == 10


def test_a_beat_start_before_the_pay_day_pays_nothing_early(settings: Any, amqp: Connection, purge: None) -> None:
    hire(2)
    with time_machine.travel(datetime(2026, 10, 5, 12, 0, tzinfo=UTC), tick=True) as clock:
        use_zone(settings, "Europe/Berlin")
        payroll_run(period=date(2026, 9, 1))
        clock.move_to(datetime(2026, 11, 1, 7, 59, tzinfo=UTC))  # 08:59 in Berlin: October ended, not yet due
        beat = beat_starts()
        tick(beat)
        execute(sent_payroll_tasks(amqp))
    assert list(PayrollRun.objects.values_list("period", flat=True)) == [date(2026, 9, 1)]


def test_a_disabled_schedule_pays_nothing(settings: Any, amqp: Connection, purge: None) -> None:
    hire(2)
    with time_machine.travel(datetime(2026, 11, 1, 9, 0, 1, tzinfo=UTC), tick=True):
        use_zone(settings, "UTC")
        PeriodicTask.objects.filter(name=SCHEDULE).update(enabled=False)
        run_due_payroll()
    assert not PayrollRun.objects.exists()
