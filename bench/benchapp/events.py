from events import EventSchema, event_type


class BenchPingV1(EventSchema):
    seq: int
    phase: str
    note: str = ""


BenchPing = event_type("bench", "BenchPing", versions={"1.0": BenchPingV1})
