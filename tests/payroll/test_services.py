"""The payroll run: one payslip and one SalaryCredited per employee and period, whatever happens."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import IntegrityError, connections, transaction

from events.models import StoredEvent
from payroll import services
from payroll.models import PayrollRun, Payslip
from payroll.services import PeriodNotEnded, payroll_run, payroll_run_due
from tests.payroll.factories import hire

OCTOBER = date(2026, 10, 1)
NOV_2 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def salary_events() -> list[dict[str, Any]]:
    return list(StoredEvent.objects.filter(event_type="SalaryCredited").order_by("position").values_list("data", flat=True))


def assert_paid_once(employees: list[Any], period: date = OCTOBER) -> None:
    payslips = Payslip.objects.filter(period=period)
    assert sorted(payslips.values_list("employee_id", flat=True)) == sorted(e.pk for e in employees)
    events = [e for e in salary_events() if e["period"] == f"{period:%Y-%m}"]
    assert Counter(e["employeeId"] for e in events) == Counter(str(e.pk) for e in employees)  # one each
    assert sorted(int(e["payslipId"]) for e in events) == sorted(payslips.values_list("pk", flat=True))
    run = PayrollRun.objects.get(period=period)
    assert (run.status, run.payslips_written, run.employees_total) == ("completed", len(employees), len(employees))


@pytest.mark.django_db
@time_machine.travel(NOV_2, tick=False)
def test_a_run_pays_each_active_employee_once_with_one_event_each() -> None:
    employees = hire(7, salary="1000.50", currency="USD")
    inactive = hire(1, prefix="gone")[0]
    inactive.active = False
    inactive.save()

    run = payroll_run(period=OCTOBER, chunk_size=3)

    assert_paid_once(employees)
    assert run.started_at == run.finished_at == NOV_2 and run.attempts == 1
    first = salary_events()[0]
    employee = employees[0]
    assert first == {
        "payslipId": str(Payslip.objects.get(employee=employee).pk),
        "employeeId": str(employee.pk),
        "userId": str(employee.user.pk),
        "username": "emp0",
        "email": "emp0@example.com",
        "period": "2026-10",
        "amount": "1000.50",
        "currency": "USD",
        "creditedAt": "2026-11-02T12:00:00Z",
    }
    event = StoredEvent.objects.filter(event_type="SalaryCredited").first()
    assert (event.topic, event.routing_key, event.subject) == ("payroll", "payroll.SalaryCredited", f"employee-{employee.pk}")

    again = payroll_run(period=OCTOBER)  # a second beat, a retry: nothing more
    assert again.pk == run.pk and again.attempts == 1
    assert_paid_once(employees)


@pytest.mark.django_db
@time_machine.travel(NOV_2, tick=False)
def test_the_database_refuses_a_second_payslip_for_the_same_employee_and_period() -> None:
    employee = hire(1)[0]
    run = payroll_run(period=OCTOBER)

    with pytest.raises(IntegrityError), transaction.atomic():
        Payslip.objects.create(employee=employee, run=run, period=OCTOBER, amount=Decimal(1), currency="EUR")
    with pytest.raises(IntegrityError), transaction.atomic():
        PayrollRun.objects.create(period=OCTOBER)


@pytest.mark.django_db
@time_machine.travel(NOV_2, tick=False)
def test_a_month_that_has_not_ended_is_refused(settings: Any) -> None:
    hire(1)
    with pytest.raises(PeriodNotEnded, match="2026-11 has not ended"):
        payroll_run(period=date(2026, 11, 1))
    settings.PAYROLL_TIME_ZONE = "Pacific/Kiritimati"  # UTC+14: already 3 November there, still October unpaid
    assert payroll_run_due().period == OCTOBER
    assert not PayrollRun.objects.filter(period=date(2026, 11, 1)).exists()


@pytest.mark.django_db
@time_machine.travel(NOV_2, tick=False)
def test_a_run_that_fails_half_way_is_finished_by_the_retry_without_paying_anyone_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    employees = hire(25)
    real_publish = services.publish
    published = [0]

    def publish_then_fail(*args: Any, **kwargs: Any) -> Any:
        published[0] += 1
        if published[0] == 13:  # in the third chunk of five
            raise ConnectionError("the database went away")
        return real_publish(*args, **kwargs)

    monkeypatch.setattr(services, "publish", publish_then_fail)
    with pytest.raises(ConnectionError):
        payroll_run(period=OCTOBER, chunk_size=5)

    run = PayrollRun.objects.get(period=OCTOBER)
    assert (run.status, run.payslips_written) == ("failed", 10)  # two chunks committed, the third rolled back whole
    assert "the database went away" in run.last_error
    assert Payslip.objects.count() == len(salary_events()) == 10

    run = payroll_run(period=OCTOBER, chunk_size=5)  # the retry
    assert run.attempts == 2 and run.last_error == ""
    assert_paid_once(employees)


@pytest.mark.django_db(transaction=True)
@time_machine.travel(NOV_2, tick=True)
def test_runs_of_the_same_period_at_the_same_time_pay_everyone_once() -> None:
    employees = hire(120)
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            payroll_run_due()  # as when two beats queued the job and two workers picked it up
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    assert PayrollRun.objects.count() == 1
    assert_paid_once(employees)


@pytest.mark.django_db
def test_the_monthly_job_first_finishes_an_earlier_run_left_unfinished(monkeypatch: pytest.MonkeyPatch) -> None:
    employees = hire(6)
    real_publish = services.publish
    calls = [0]

    def publish_then_fail(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 4:
            raise ConnectionError("the database went away")
        return real_publish(*args, **kwargs)

    with time_machine.travel(NOV_2, tick=False):
        monkeypatch.setattr(services, "publish", publish_then_fail)
        with pytest.raises(ConnectionError):
            payroll_run(period=OCTOBER, chunk_size=3)  # its retries ran out: October stays failed
        monkeypatch.setattr(services, "publish", real_publish)
    with time_machine.travel(datetime(2026, 12, 1, 9, 0, 1, tzinfo=UTC), tick=False):
        assert payroll_run_due().period == date(2026, 11, 1)

    assert_paid_once(employees, OCTOBER)
    assert_paid_once(employees, date(2026, 11, 1))
