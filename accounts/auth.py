"""Token authentication for the JSON APIs, with the hourly call limit.

`Authorization: Bearer <key>`. Each authenticated call takes one unit of the user's hourly limit
(per user, shared by all of the user's tokens, so more tokens do not mean more calls). An unknown
key answers 401; an exhausted limit answers 429 with `Retry-After`: the seconds until the hourly
job restores the limits (the start of the next UTC hour).
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.http import HttpRequest
from ninja.security import HttpBearer

from accounts.services import api_call_consume, api_token_user, seconds_until_refresh


class CallLimitExhausted(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"this user's API calls for the hour are used up; they are restored in {retry_after} s")
        self.retry_after = retry_after


class ApiTokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> AbstractUser | None:
        user = api_token_user(key=token.strip())
        if user is None:
            return None
        if not api_call_consume(user=user):
            raise CallLimitExhausted(seconds_until_refresh())
        request.user = user
        return user
