import time
from typing import Any

from django.core.management.base import BaseCommand

from orders import projections


class Command(BaseCommand):
    help = "Rebuild the orders read model from scratch by replaying the event log."

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        count = projections.rebuild()
        self.stdout.write(f"rebuilt {count} orders in {time.perf_counter() - started:.2f} s")
