"""Who may call the state-changing APIs. Each list is tried in order; the first that recognises the caller wins.

- `CUSTOMER`: a person: an API token (`Authorization: Bearer`, which takes from the user's hourly
  call limit), Django's session (the admin's login, with CSRF) or HTTP Basic with a username and
  password.
- `SERVICE`: another service of this project, with `X-Service-Key: <SERVICE_API_KEY>`.
"""

import hmac
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import HttpRequest
from ninja.security import APIKeyHeader, HttpBasicAuth
from ninja.security import SessionAuth as NinjaSessionAuth

from accounts.auth import ApiTokenAuth
from project.schemas import ErrorOut


class SessionAuth(NinjaSessionAuth):
    """Django's session, with its CSRF check; a request without a session cookie is simply not this scheme's."""

    def _get_key(self, request: HttpRequest) -> str | None:
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return None
        return super()._get_key(request)


class BasicAuth(HttpBasicAuth):
    def authenticate(self, request: HttpRequest, username: str, password: str) -> Any:
        user = authenticate(request, username=username, password=password)
        if user is not None and user.is_active:
            request.user = user
            return user
        return None


# What `request.auth` is for a call from another service.
SERVICE_CALLER = "service"


class ServiceKey(APIKeyHeader):
    param_name = "X-Service-Key"

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        if key and hmac.compare_digest(key.encode(), settings.SERVICE_API_KEY.encode()):
            return SERVICE_CALLER
        return None


CUSTOMER = [ApiTokenAuth(), SessionAuth(), BasicAuth()]
SERVICE = [ServiceKey()]

# What an operation behind these may answer besides its own results (403: a session without its CSRF
# token; 429: a token whose user has used up the hour's calls).
AUTH_ERRORS: dict[int, Any] = {401: ErrorOut, 403: ErrorOut, 429: ErrorOut}
