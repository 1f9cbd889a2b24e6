from bench.benchapp.events import BenchPing, BenchPingV1, BenchStep, BenchStepV1
from events import Event, subscribe


@subscribe(BenchPing, version="1.0", service="bench")
def bench_ping_ignore(event: Event[BenchPingV1]) -> None:
    """The trivial handler: the bus's own inbox row is the only write."""


@subscribe(BenchStep, version="1.0", service="bench")
def bench_step_unordered(event: Event[BenchStepV1]) -> None:
    """Trivial, run by handler tasks in the pool: a subject's events may run out of order."""


@subscribe(BenchStep, version="1.0", service="bench_ordered", ordered=True)
def bench_step_ordered(event: Event[BenchStepV1]) -> None:
    """Trivial, ordered: a subject's events run in sequence, in the lanes of the active worker."""
