"""The payroll in the admin: run a chosen month now (through the payroll worker's task), see each run's progress."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from kombu import Connection

from payroll.models import PayrollRun
from payroll.tasks import run_payroll_for_period
from tests.payroll.factories import hire
from tests.payroll.test_services import assert_paid_once

pytestmark = [pytest.mark.django_db, pytest.mark.broker]

RUN = reverse("admin:payroll_payrollrun_run")
RUNS = reverse("admin:payroll_payrollrun_changelist")
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def queued(amqp: Connection) -> list[tuple[str, list[Any]]]:
    tasks = []
    while (message := amqp.default_channel.basic_get("payroll", no_ack=True)) is not None:
        tasks.append((message.headers["task"], json.loads(message.body)[0]))
    return tasks


def said(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@time_machine.travel(NOW, tick=False)
def test_run_now_queues_the_same_job_and_the_run_shows_its_progress(admin_client: Client, amqp: Connection, purge: None) -> None:
    employees = hire(3)
    page = admin_client.get(RUNS)
    assert RUN in page.content.decode()
    form = admin_client.get(RUN)
    assert form.status_code == 200 and form.context["form"].initial["period"] == "2026-10"

    response = admin_client.post(RUN, {"period": "2026-10"}, follow=True)

    assert "Payroll for 2026-10 queued" in said(response)[0]
    run = PayrollRun.objects.get()
    assert (run.period, run.status, run.trigger) == (date(2026, 10, 1), "pending", "admin")
    tasks = queued(amqp)
    assert tasks == [("payroll.run_period", ["2026-10", "admin"])]

    run_payroll_for_period(*tasks[0][1])  # what the payroll worker runs
    assert_paid_once(employees)
    listing = admin_client.get(RUNS).content.decode()
    assert "3 / 3" in listing and "completed" in listing

    again = admin_client.post(RUN, {"period": "2026-10"}, follow=True)
    assert "was paid already" in said(again)[0]
    assert queued(amqp) == []
    assert admin_client.get(reverse("admin:payroll_payrollrun_change", args=[run.pk])).status_code == 200


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(("period", "error"), [("2026-11", "has not ended yet"), ("2026-13", "YYYY-MM"), ("October", "YYYY-MM")])
def test_a_month_that_cannot_be_paid_is_refused_with_the_reason(
    admin_client: Client, amqp: Connection, purge: None, period: str, error: str
) -> None:
    response = admin_client.post(RUN, {"period": period})
    assert response.status_code == 200 and error in str(response.context["form"].errors)
    assert not PayrollRun.objects.exists() and queued(amqp) == []


@time_machine.travel(NOW, tick=False)
def test_the_payroll_pages_and_the_schedules_with_their_next_run_show_in_the_admin(admin_client: Client) -> None:
    hire(1)
    for name in ["payroll_employee", "payroll_payslip", "payroll_payrollrun", "accounts_apitoken", "accounts_apicalllimit"]:
        assert admin_client.get(reverse(f"admin:{name}_changelist")).status_code == 200, name
    tasks = admin_client.get(reverse("admin:django_celery_beat_periodictask_changelist")).content.decode()
    assert "payroll: pay the month that ended" in tasks and "accounts: restore API call limits" in tasks
    assert "Next run" in tasks and "2026-12-01 09:00:00 UTC" in tasks  # the payroll's next pay day


def test_an_api_token_added_in_the_admin_shows_its_key_once(admin_client: Client, admin_user: Any) -> None:
    response = admin_client.post(reverse("admin:accounts_apitoken_add"), {"user": admin_user.pk, "name": "cli"}, follow=True)
    message = next(m for m in said(response) if "shown only now" in m)
    key = message.rsplit(" ", 1)[-1]
    assert "shown only now" in message and key.startswith("tok_")
    assert Client().get("/api/users/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200
