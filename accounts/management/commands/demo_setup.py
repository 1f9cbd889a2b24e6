import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.services import user_register


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
        self.stdout.write(
            f"\n  Django admin:      http://127.0.0.1:8000/admin/   user {username!r}, password {password!r}"
            "\n  API docs:          http://127.0.0.1:8000/api/docs"
            "\n  RabbitMQ UI:       http://127.0.0.1:15672/         user 'guest', password 'guest'"
            " (needs: rabbitmq-plugins enable rabbitmq_management)\n"
            "\n  Try it: add a user with an email in the admin (Authentication and Authorization > Users > Add),"
            "\n  and watch the notifications worker log the welcome email.\n"
        )
