"""Faults of the database (PostgreSQL gone for a while) and of the scheduler (two beats, a beat restarted)."""

from __future__ import annotations

import signal
import threading
import time

import psycopg
import pytest
from django.db import connection
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from accounts.models import TokenLimitRestoration
from events.models import StoredEvent
from notifications.models import Notification
from payroll.models import PayrollRun, Payslip
from tests.chaos import load
from tests.chaos.conftest import postgres_only
from tests.chaos.harness import Stack, assert_clean, drain
from tests.payroll.factories import hire, recreate_schedules
from tests.support import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = 12


def admin_connection() -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"] or "postgres", dbname="postgres", autocommit=True
    )


def database_outage(name: str, spared: int, seconds: float) -> int:
    """Refuse new connections to database `name` and end every session on it but `spared`; allow them after `seconds`.

    Only this run's own database (`chaos_*`) is touched. Returns the number of sessions ended.
    """
    with admin_connection() as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            ended = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s AND pid <> %s", (name, spared)
            ).fetchone()[0]
            time.sleep(seconds)
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    return ended


def test_6_the_database_unavailable_for_a_while(stack: Stack) -> None:
    postgres_only()
    stack.relay()
    stack.worker("all", load.ALL)
    load.mixed()
    load.work(40, seconds=0.05)
    wait_for(lambda: Notification.objects.filter(kind="chaos-work").count() >= 3, timeout=120, message="handlers under way")
    fault = time.monotonic()
    mine = connection.cursor().connection.info.backend_pid  # this process's session, as a web process that keeps its own
    outage = threading.Thread(target=database_outage, args=(connection.settings_dict["NAME"], mine, OUTAGE_SECONDS))
    outage.start()
    try:
        time.sleep(1)
        load.marks(200, prefix="during")
    finally:
        outage.join()
    figures = drain(stack, f"6 database unavailable {OUTAGE_SECONDS} s", since=fault, timeout=240)
    assert_clean(figures)
    assert all(proc.alive() for proc in stack.procs), "a process gave up during the outage"


def test_17_two_beats_and_a_beat_restarted_run_each_period_once(stack: Stack) -> None:
    recreate_schedules()
    employees = hire(20, prefix="staff")
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    for name in ("payroll: pay the month that ended", "accounts: restore API call limits"):
        PeriodicTask.objects.filter(name=name).update(interval=every_second, crontab=None)
    PeriodicTask.objects.exclude(name__in=["payroll: pay the month that ended", "accounts: restore API call limits"]).update(
        enabled=False
    )
    stack.relay()
    stack.worker("all", ["payroll", "notifications", "accounts"])
    first = stack.beat("beat-1")
    stack.beat("beat-2")
    wait_for(lambda: Notification.objects.filter(kind="salary-credited").count() >= 20, timeout=120, message="the notices")
    fault = time.monotonic()
    first.send(signal.SIGKILL)
    first.handle.wait()
    time.sleep(2)  # due times pass while it is down
    again = stack.beat("beat-1")
    wait_for(lambda: again.output().count("Sending due task") >= 3, timeout=60, message="the restarted beat firing")
    fired = sum(proc.output().count("Sending due task") for proc in stack.procs if proc.name.startswith("beat"))
    for proc in [p for p in stack.procs if p.name.startswith("beat")]:
        proc.stop()
    figures = drain(stack, "17 two beats, one restarted across due times", since=fault)
    assert_clean(figures)
    assert fired >= 10
    assert PayrollRun.objects.count() == 1
    assert Payslip.objects.count() == len(employees)
    assert StoredEvent.objects.filter(event_type="SalaryCredited").count() == len(employees)
    hours = {
        e.timestamp.replace(minute=0, second=0, microsecond=0)
        for e in StoredEvent.objects.filter(event_type="TokenLimitsRestored")
    }
    assert TokenLimitRestoration.objects.count() == len(hours) <= 2
