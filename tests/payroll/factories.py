"""Test data for payroll: many employees quickly (bulk, not through sign-up: their registration is not under test)."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth import get_user_model

from payroll.models import Employee


def hire(count: int, *, prefix: str = "emp", salary: str = "3000.00", currency: str = "EUR") -> list[Employee]:
    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"{prefix}{i}", email=f"{prefix}{i}@example.com", password="!") for i in range(count)]
    )
    if users and users[0].pk is None:  # a backend that does not return keys from bulk inserts
        users = list(User.objects.filter(username__startswith=prefix).order_by("pk"))
    Employee.objects.bulk_create(
        [Employee(user=user, monthly_salary=Decimal(salary) + i, currency=currency) for i, user in enumerate(users)]
    )
    return list(Employee.objects.filter(user__username__startswith=prefix).order_by("pk"))


def recreate_schedules() -> None:
    """The schedules the migrations create (a transactional test's flush removes them)."""
    import importlib

    from django.apps import apps

    for module in ("payroll.migrations.0002_monthly_schedule", "accounts.migrations.0002_hourly_limits_schedule"):
        importlib.import_module(module).create_schedule(apps, None)
