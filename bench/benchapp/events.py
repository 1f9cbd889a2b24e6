from events import EventSchema, event_type


class BenchPingV1(EventSchema):
    seq: int
    phase: str
    note: str = ""


BenchPing = event_type("bench", "BenchPing", versions={"1.0": BenchPingV1})


class BenchStepV1(EventSchema):
    n: int


# Read by an unordered handler (service `bench`) and an ordered one (service `bench_ordered`): bench/ordered.py.
BenchStep = event_type("bench", "BenchStep", versions={"1.0": BenchStepV1})
