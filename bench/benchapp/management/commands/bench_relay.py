import logging
import signal
from typing import Any

from django.core.management.base import BaseCommand

from bench.benchapp.hops import HopRelay


class Command(BaseCommand):
    help = "`manage.py relay` with the bench's hop recording (bench/benchapp/hops.py); for bench/run.py."

    def handle(self, *args: Any, **options: Any) -> None:
        relay = HopRelay()

        def stop(signum: int, frame: object) -> None:
            logging.getLogger("events.relay").info("signal %s: stopping after the current batch", signum)
            relay.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            relay.run()
        finally:
            relay.recorder.write()
