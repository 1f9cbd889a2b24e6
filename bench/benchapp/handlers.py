from bench.benchapp.events import BenchPing, BenchPingV1
from events import Event, subscribe


@subscribe(BenchPing, version="1.0", service="bench")
def bench_ping_ignore(event: Event[BenchPingV1]) -> None:
    """The trivial handler: the bus's own inbox row is the only write."""
