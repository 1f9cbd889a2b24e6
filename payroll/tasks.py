"""Payroll's Celery tasks: thin, on the `payroll` queue; the services make them safe to repeat."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import beat_init
from django.db import DatabaseError

from payroll.models import PayrollRun
from payroll.periods import parse_period
from payroll.services import PeriodNotEnded, payroll_run, payroll_run_due

logger = logging.getLogger(__name__)

# A run of many thousand employees may take minutes; a killed or timed-out run is finished by the
# next execution, so the limit only bounds how long one execution holds a worker.
LIMITS = {"time_limit": 60 * 60, "soft_time_limit": 55 * 60}
# A run stopped by the soft time limit is finished by the retry, like one stopped by the database.
RETRY = {"autoretry_for": (DatabaseError, SoftTimeLimitExceeded), "retry_backoff": 5, "retry_backoff_max": 300, "max_retries": 8}


@shared_task(name="payroll.run_due", **LIMITS, **RETRY)
def run_due_payroll(catch_up: bool = False) -> str:
    """The beat job: the payroll of the latest month that is due, unless it is paid already."""
    run = payroll_run_due(catch_up=catch_up)
    return f"{run} {run.status}: {run.payslips_written} payslips" if run else "nothing to run"


@beat_init.connect
def catch_up_on_beat_start(sender: object = None, **kwargs: object) -> None:
    """Every beat start asks once for the latest due month: one missed while beat was down is paid now."""
    logger.info("beat started: checking for a payroll month that is due and not paid")
    run_due_payroll.apply_async(kwargs={"catch_up": True})


@shared_task(name="payroll.run_period", **LIMITS, **RETRY)
def run_payroll_for_period(period: str, trigger: str = PayrollRun.Trigger.ADMIN) -> str:
    """The admin's "run now": the same service, the same once-per-period rule."""
    try:
        run = payroll_run(period=parse_period(period), trigger=trigger)
    except (PeriodNotEnded, ValueError) as exc:
        logger.error("payroll for %s not run: %s", period, exc)
        return f"not run: {exc}"
    return f"{run} {run.status}: {run.payslips_written} payslips"
