from datetime import datetime

from events import EventSchema, event_type


class UserRegisteredV1(EventSchema):
    userId: str
    username: str
    email: str
    dateJoined: datetime


UserRegistered = event_type("users", "UserRegistered", versions={"1.0": UserRegisteredV1})


class TokenLimitsRestoredV1(EventSchema):
    hour: datetime
    users: int
    callsPerHour: int


TokenLimitsRestored = event_type("users", "TokenLimitsRestored", versions={"1.0": TokenLimitsRestoredV1})
