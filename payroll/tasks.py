"""Payroll's Celery tasks: thin, on the `payroll` queue; the services make them safe to repeat."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import DatabaseError

from payroll.models import PayrollRun
from payroll.periods import parse_period
from payroll.services import PeriodNotEnded, payroll_run, payroll_run_due

logger = logging.getLogger(__name__)

# A run of many thousand employees may take minutes; a killed or timed-out run is finished by the
# next execution, so the limit only bounds how long one execution holds a worker.
LIMITS = {"time_limit": 60 * 60, "soft_time_limit": 55 * 60}
RETRY = {"autoretry_for": (DatabaseError,), "retry_backoff": 5, "retry_backoff_max": 300, "max_retries": 8}


@shared_task(name="payroll.run_due", queue="payroll", **LIMITS, **RETRY)
def run_due_payroll() -> str:
    """The beat job: the payroll of the latest month that has ended, unless it is done already."""
    run = payroll_run_due()
    return f"{run} {run.status}: {run.payslips_written} payslips"


@shared_task(name="payroll.run_period", queue="payroll", **LIMITS, **RETRY)
def run_payroll_for_period(period: str, trigger: str = PayrollRun.Trigger.ADMIN) -> str:
    """The admin's "run now": the same service, the same once-per-period rule."""
    try:
        run = payroll_run(period=parse_period(period), trigger=trigger)
    except (PeriodNotEnded, ValueError) as exc:
        logger.error("payroll for %s not run: %s", period, exc)
        return f"not run: {exc}"
    return f"{run} {run.status}: {run.payslips_written} payslips"
