from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from kombu import Connection

from events import topology


class Command(BaseCommand):
    help = "Declare the broker topology (exchanges, queues, bindings) and print it."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--print-only", action="store_true", help="print without declaring")

    def handle(self, *args: Any, print_only: bool, **options: Any) -> None:
        if not print_only:
            with Connection(settings.CELERY_BROKER_URL) as connection:
                connection.ensure_connection(max_retries=3)
                topology.declare(connection)
            self.stdout.write(self.style.SUCCESS("declared:"))
        self.stdout.write(topology.describe())
