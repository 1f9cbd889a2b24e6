import os
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiToken
from accounts.services import api_token_create, user_register

DEMO_EMPLOYEES = [("grace", "4200.00", "EUR"), ("linus", "3900.00", "EUR"), ("margaret", "5100.00", "USD")]


class Command(BaseCommand):
    help = "Create the demo superuser for a development instance and print its credentials."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_setup is for development instances (DEBUG=True) only")
        username = os.environ.get("DEMO_ADMIN_USERNAME", "admin")
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "admin")
        email = f"{username}@example.com"
        if not get_user_model().objects.filter(username=username).exists():
            # Registered like any other user: its UserRegistered is the demo's first event.
            user_register(username=username, email=email, password=password, is_staff=True, is_superuser=True)
            self.stdout.write(
                self.style.SUCCESS(f"Created demo superuser {username!r}.")
                + f"\nIts UserRegistered event is the demo's first: once the relay and the notifications worker are up,"
                f"\nthe worker logs a welcome email to {email}.\n"
            )
        admin_user = get_user_model().objects.get(username=username)
        self._seed_employees()
        if not ApiToken.objects.filter(user=admin_user).exists():
            _, key = api_token_create(user=admin_user, name="demo")
            self.stdout.write(
                f"API token of {username!r} (shown once): {key}\n"
                f"  curl -H 'Authorization: Bearer {key}' localhost:8000/api/users/me"
            )
        self.stdout.write(
            f"\n  Django admin:      http://127.0.0.1:8000/admin/   user {username!r}, password {password!r}"
            "\n  API docs:          http://127.0.0.1:8000/api/docs"
            "\n  RabbitMQ UI:       http://127.0.0.1:15672/         user 'guest', password 'guest'"
            " (needs: rabbitmq-plugins enable rabbitmq_management)\n"
            "\n  Try it: add a user with an email in the admin (Authentication and Authorization > Users > Add),"
            "\n  and watch the notifications worker log the welcome email."
            "\n  Payroll: Payroll > Payroll runs > Run payroll now, and watch the salary-credited notices arrive.\n"
        )

    def _seed_employees(self) -> None:
        from payroll.models import Employee
        from payroll.services import employee_hire

        User = get_user_model()
        hired = []
        for name, salary, currency in DEMO_EMPLOYEES:
            user = User.objects.filter(username=name).first() or user_register(username=name, email=f"{name}@example.com")
            if not Employee.objects.filter(user=user).exists():
                employee_hire(user=user, monthly_salary=Decimal(salary), currency=currency)
                hired.append(name)
        if hired:
            self.stdout.write(self.style.SUCCESS(f"Hired demo employees: {', '.join(hired)}."))
