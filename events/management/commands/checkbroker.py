import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from kombu import Connection

HELP = """RabbitMQ is not reachable at {url}: {error}

Start it, then try again:
  - Debian/Ubuntu:  sudo rabbitmq-server -detached   (or: sudo systemctl start rabbitmq-server)
  - macOS:          brew services start rabbitmq
  - Docker:         docker compose up -d rabbitmq
The management UI (http://localhost:15672, guest/guest) needs: rabbitmq-plugins enable rabbitmq_management
Point elsewhere with CELERY_BROKER_URL=amqp://user:password@host:5672/vhost
"""


class Command(BaseCommand):
    help = "Check that the broker in CELERY_BROKER_URL answers; explain how to start it if not."

    def handle(self, *args: Any, **options: Any) -> None:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=3) as connection:
            try:
                connection.ensure_connection(max_retries=1)
            except Exception as exc:
                self.stderr.write(HELP.format(url=connection.as_uri(), error=exc))
                sys.exit(1)
            self.stdout.write(f"RabbitMQ is up at {connection.as_uri()}")
