"""Payroll with real processes: a worker killed half-way, and celery beat itself driving the job."""

from __future__ import annotations

import os
import re
import signal
from typing import Any

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from events.models import InboxEntry, StoredEvent
from notifications.models import Notification
from payroll.models import PayrollRun, Payslip
from payroll.periods import format_period, last_ended_period
from payroll.tasks import run_payroll_for_period
from tests.payroll.factories import hire, recreate_schedules
from tests.payroll.test_services import assert_paid_once
from tests.support import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.broker]

WORKER = ["-m", "celery", "-A", "project", "worker", "-l", "INFO", "--without-gossip", "--without-mingle"]


def test_a_worker_killed_half_way_through_a_run_leaves_the_rest_to_the_next_and_pays_nobody_twice(
    processes: Any, purge: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYROLL_CHUNK_SIZE", "100")
    employees = hire(3000)
    period = last_ended_period()
    first = processes("worker-1", *WORKER, "-Q", "payroll", "-P", "solo", "-n", "payroll-1@test")

    run_payroll_for_period.delay(format_period(period))
    wait_for(lambda: Payslip.objects.count() >= 300, timeout=90, message="the run to be under way")
    os.kill(first.handle.pid, signal.SIGKILL)  # mid-chunk, nothing cleaned up
    first.handle.wait()

    paid_when_killed = Payslip.objects.count()
    assert paid_when_killed < len(employees), "the run finished before the worker was killed: nothing was tested"
    assert PayrollRun.objects.get().status == "running"
    assert StoredEvent.objects.filter(event_type="SalaryCredited").count() == paid_when_killed  # whole chunks only

    # The unacknowledged task comes back from the broker to the next worker, which pays the rest.
    processes("worker-2", *WORKER, "-Q", "payroll", "-P", "solo", "-n", "payroll-2@test")
    run = wait_for(lambda: PayrollRun.objects.filter(status="completed").first(), timeout=180, message="the run to be completed")
    assert run.attempts == 2
    assert_paid_once(employees, period)


def test_celery_beat_drives_the_payroll_and_each_employee_gets_one_notice(processes: Any, purge: None) -> None:
    recreate_schedules()
    employees = hire(5, prefix="staff")
    period = format_period(last_ended_period())
    # A schedule due within seconds, and due again every second after: each firing must find the month paid.
    task = PeriodicTask.objects.get(name="payroll: pay the month that ended")
    task.interval, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    task.crontab = None
    task.save()
    PeriodicTask.objects.exclude(pk=task.pk).update(enabled=False)

    processes("relay", "manage.py", "relay")
    worker = processes("worker", *WORKER, "-Q", "payroll,notifications", "-c", "2", "-n", "payroll-notifications@test")
    beat = "django_celery_beat.schedulers:DatabaseScheduler"
    beats = [
        processes(f"beat-{i}", "-m", "celery", "-A", "project", "beat", "-S", beat, "--max-interval", "1", "-l", "INFO")
        for i in (1, 2)
    ]

    notices = wait_for(
        lambda: (
            list(Notification.objects.filter(kind="salary-credited"))
            if Notification.objects.filter(kind="salary-credited").count() >= 5
            else None
        ),
        timeout=120,
        message="the salary-credited notices",
    )
    assert sorted(n.recipient for n in notices) == sorted(e.user.email for e in employees)
    assert all(n.subject == f"Your salary for {period} has been credited" for n in notices)

    sent = re.compile(r"Sending due task payroll: pay the month that ended")
    wait_for(lambda: all(len(sent.findall(b.output())) >= 3 for b in beats), timeout=60, message="each beat to fire 3 times")
    done = re.compile(r"Task payroll\.run_due\[[^\]]+\] succeeded")
    fired = sum(len(sent.findall(b.output())) for b in beats)
    wait_for(lambda: len(done.findall(worker.output())) >= fired, timeout=60, message="the worker to run every firing")

    assert PayrollRun.objects.get().status == "completed"
    assert_paid_once(employees, last_ended_period())
    assert Notification.objects.filter(kind="salary-credited").count() == 5
    handled = InboxEntry.objects.filter(handler="notifications.handlers.send_salary_credited_notice")
    assert handled.count() == 5
    assert worker.output().count(f"Your salary for {period} has been credited") == 5  # the emails, in the worker's log
