from __future__ import annotations

import logging
from datetime import date, datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from events import publish
from payroll.events import SalaryCredited, SalaryCreditedV1
from payroll.models import Employee, PayrollRun, Payslip
from payroll.periods import format_period, last_ended_period
from payroll.schedule import latest_due_period, schedule_row

logger = logging.getLogger(__name__)


class PeriodNotEnded(ValueError):
    pass


@transaction.atomic
def employee_hire(*, user: AbstractUser, monthly_salary: Decimal, currency: str = "EUR") -> Employee:
    return Employee.objects.create(user=user, monthly_salary=monthly_salary, currency=currency.upper())


def payroll_run_open(*, period: date, trigger: str = PayrollRun.Trigger.SCHEDULE) -> PayrollRun:
    """The run of `period`, created if it does not exist yet (one row per period, whoever asks)."""
    if period.day != 1:
        raise ValueError(f"a period is named by the first day of its month, not {period}")
    if period > last_ended_period():
        raise PeriodNotEnded(f"the month {format_period(period)} has not ended yet in {settings.PAYROLL_TIME_ZONE}")
    run, _ = PayrollRun.objects.get_or_create(period=period, defaults={"trigger": trigger})
    return run


def payroll_run(*, period: date, trigger: str = PayrollRun.Trigger.SCHEDULE, chunk_size: int | None = None) -> PayrollRun:
    """Pay every active employee for `period` once, and publish one SalaryCredited per payslip.

    Safe to call any number of times, concurrently, and after a crash half-way: each chunk takes
    the run's row lock, pays only employees without a payslip for the period, and commits its
    payslips, their events and the run's progress together. A payslip and its event exist
    together or not at all; (employee, period) is unique in the database as the last word.

    Not one transaction for the whole run on purpose: thousands of employees would hold the
    lock (and SQLite's only writer) for the whole run, and a crash would lose all the work.
    """
    chunk_size = chunk_size or settings.PAYROLL_CHUNK_SIZE
    run = payroll_run_open(period=period, trigger=trigger)
    if run.status == PayrollRun.Status.COMPLETED:
        return run
    first_chunk = True
    while True:
        try:
            with transaction.atomic():
                run, done = _pay_chunk(run.pk, chunk_size, new_attempt=first_chunk)
        except Exception as exc:
            _payroll_run_failed(run_id=run.pk, error=f"{type(exc).__name__}: {exc}")
            raise
        first_chunk = False
        if done:
            logger.info("payroll %s completed: %d payslips", format_period(run.period), run.payslips_written)
            return run


def _unpaid(period: date) -> QuerySet[Employee]:
    paid = Payslip.objects.filter(employee=OuterRef("pk"), period=period)
    return Employee.objects.filter(active=True).exclude(Exists(paid))


def _pay_chunk(run_id: int, chunk_size: int, *, new_attempt: bool) -> tuple[PayrollRun, bool]:
    # The row lock orders concurrent executions of the same run on PostgreSQL (on SQLite each
    # transaction already begins as the only writer); what is read below is read after it.
    run = PayrollRun.objects.select_for_update().get(pk=run_id)
    if run.status == PayrollRun.Status.COMPLETED:
        return run, True
    now = timezone.now()
    if new_attempt:
        run.attempts += 1
    if run.status != PayrollRun.Status.RUNNING:
        run.status = PayrollRun.Status.RUNNING
        run.last_error = ""
    run.started_at = run.started_at or now
    employees = list(_unpaid(run.period).select_related("user").order_by("pk")[:chunk_size])
    payslips = Payslip.objects.bulk_create(
        [
            Payslip(employee=employee, run=run, period=run.period, amount=employee.monthly_salary, currency=employee.currency)
            for employee in employees
        ]
    )
    period = format_period(run.period)
    for payslip, employee in zip(payslips, employees, strict=True):
        user = employee.user
        publish(
            SalaryCredited,
            SalaryCreditedV1(
                payslipId=str(payslip.pk),
                employeeId=str(employee.pk),
                userId=str(user.pk),
                username=user.get_username(),
                email=user.email,
                period=period,
                amount=payslip.amount,
                currency=payslip.currency,
                creditedAt=now,
            ),
            subject=f"employee-{employee.pk}",
        )
    run.payslips_written = Payslip.objects.filter(period=run.period).count()
    done = len(employees) < chunk_size
    if done:
        run.employees_total = run.payslips_written
        run.status = PayrollRun.Status.COMPLETED
        run.finished_at = now
    else:
        run.employees_total = run.payslips_written + _unpaid(run.period).count()
    run.save()
    return run, done


def _payroll_run_failed(*, run_id: int, error: str) -> None:
    try:
        with transaction.atomic():
            PayrollRun.objects.filter(pk=run_id).exclude(status=PayrollRun.Status.COMPLETED).update(
                status=PayrollRun.Status.FAILED, last_error=error[:2000]
            )
    except Exception:  # the database may be what failed; the error is raised to the caller anyway
        logger.exception("could not record the failure of payroll run %s", run_id)


def payroll_run_due(*, now: datetime | None = None, catch_up: bool = False) -> PayrollRun | None:
    """Run (or finish) the payroll of the latest month that is due by the schedule (payroll/schedule.py).

    Runs of earlier months left unfinished are finished first. None when the schedule is
    switched off in the admin, or, for the check at beat's start
    (`catch_up`), when there is no payroll history to continue: a fresh installation waits for its
    first pay day (or a run from the admin) rather than paying a month from before it existed.
    """
    now = now or timezone.now()
    task = schedule_row()
    if task is not None and not task.enabled:
        logger.info("payroll schedule %r is disabled; nothing run", task.name)
        return None
    period = latest_due_period(now, task)
    # Earlier runs left unfinished (a task that ran out of retries, a run queued from the admin whose
    # task was lost) are finished first.
    for unfinished in PayrollRun.objects.filter(period__lt=period).exclude(status=PayrollRun.Status.COMPLETED).order_by("period"):
        payroll_run(period=unfinished.period, trigger=unfinished.trigger)
    if catch_up and not PayrollRun.objects.filter(period__lte=period).exists():
        logger.info("no payroll history before %s: nothing to catch up", format_period(period))
        return None
    return payroll_run(period=period, trigger=PayrollRun.Trigger.SCHEDULE)
