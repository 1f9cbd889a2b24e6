import logging
import signal
from typing import Any

from django.core.management.base import BaseCommand

from events import telemetry
from events.relay import Relay


class Command(BaseCommand):
    help = "Publish the event log (outbox) to RabbitMQ until SIGTERM or Ctrl-C."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--poll", type=float, default=None, help="seconds between polls when idle")

    def handle(self, *args: Any, batch_size: int | None, poll: float | None, **options: Any) -> None:
        telemetry.setup("relay")
        relay = Relay(batch_size=batch_size, poll_seconds=poll)

        def stop(signum: int, frame: object) -> None:
            logging.getLogger("events.relay").info("signal %s: stopping after the current batch", signum)
            relay.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        relay.run()
