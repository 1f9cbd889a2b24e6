import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create the demo superuser for a development instance and print its credentials."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_setup is for development instances (DEBUG=True) only")
        username = os.environ.get("DEMO_ADMIN_USERNAME", "admin")
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "admin")
        User = get_user_model()
        if not User.objects.filter(username=username).exists():
            User.objects.create_superuser(username=username, email=f"{username}@example.com", password=password)
            self.stdout.write(self.style.SUCCESS(f"Created demo superuser {username!r}."))
        self.stdout.write(
            f"\n  Django admin:      http://127.0.0.1:8000/admin/   user {username!r}, password {password!r}"
            "\n  RabbitMQ UI:       http://127.0.0.1:15672/         user 'guest', password 'guest'\n"
        )
