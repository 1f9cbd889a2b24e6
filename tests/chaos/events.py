"""Event types of the chaos service: marks per subject, slow work, a poison, failures counted across processes."""

from events import EventSchema, event_type


class MarkV1(EventSchema):
    key: str
    n: int


class WorkV1(EventSchema):
    key: str
    seconds: float = 0.0


class PoisonV1(EventSchema):
    key: str
    mode: str = "raise"  # "raise": an exception every time; "exit": the process ends under it


class StubbornV1(EventSchema):
    key: str
    failures: int  # attempts that fail before one succeeds


class BlobV1(EventSchema):
    key: str
    blob: str = ""


class StrayV1(EventSchema):
    key: str


Mark = event_type("chaos", "Mark", versions={"1.0": MarkV1})
Work = event_type("chaos", "Work", versions={"1.0": WorkV1})
Poison = event_type("chaos", "Poison", versions={"1.0": PoisonV1})
Stubborn = event_type("chaos", "Stubborn", versions={"1.0": StubbornV1})
Blob = event_type("chaos", "Blob", versions={"1.0": BlobV1})
# Nobody subscribes to it: the broker keeps it in `events.unrouted`.
Stray = event_type("chaos", "Stray", versions={"1.0": StrayV1})
