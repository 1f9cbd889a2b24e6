"""Errors of the bus. Each carries a reason that ends up, verbatim, in the dead-letter store."""


class EventError(Exception):
    """An event that cannot be delivered as it is; ``str(exc)`` is the reason shown to people."""


class MalformedEvent(EventError):
    """The message cannot be read as an event: not JSON, wrong content type, missing fields."""


class InvalidTimestamp(MalformedEvent):
    """The timestamp is not one this project can carry (see `events.envelope.check_timestamp`)."""


class UnknownEventType(EventError):
    """No event type of that name is declared."""


class UnknownEventVersion(EventError):
    """The event type is known but not in that version."""


class ConversionError(EventError):
    """The event could not be converted to the version a handler wants."""


class InvalidEventData(EventError):
    """The event's data does not match the schema of its version."""
