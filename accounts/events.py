from datetime import datetime

from events import EventSchema, event_type


class UserRegisteredV1(EventSchema):
    userId: str
    username: str
    email: str
    dateJoined: datetime


UserRegistered = event_type("users", "UserRegistered", versions={"1.0": UserRegisteredV1})
