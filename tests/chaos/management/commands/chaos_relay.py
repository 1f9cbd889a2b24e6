"""`manage.py chaos_relay --die-after-confirm N`: the real relay, SIGKILLed by itself between a confirm and its mark.

The N-th batch the broker confirms is never marked published: the process kills itself in the
`on_confirmed` hook, after the confirm and before the `UPDATE`. Its leases are short (`--lease`),
so the next relay finds those rows again soon.
"""

import os
import signal
from typing import Any

from django.core.management.base import BaseCommand

from events.relay import Relay


class DyingRelay(Relay):
    def __init__(self, *, die_after: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.die_after = die_after
        self.confirmed_batches = 0

    def on_confirmed(self, positions: list[int]) -> None:
        self.confirmed_batches += 1
        if self.confirmed_batches >= self.die_after:
            print(f"chaos: killed after the broker confirmed {len(positions)} events, before marking them", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)


class Command(BaseCommand):
    help = "The relay, killing itself between confirm and mark on its N-th confirmed batch (fault injection)."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--die-after-confirm", type=int, default=1)
        parser.add_argument("--lease", type=float, default=3.0)
        parser.add_argument("--batch-size", type=int, default=50)

    def handle(self, *args: Any, die_after_confirm: int, lease: float, batch_size: int, **options: Any) -> None:
        DyingRelay(die_after=die_after_confirm, lease_seconds=lease, batch_size=batch_size).run()
