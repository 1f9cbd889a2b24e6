"""Who may call the state-changing APIs of the streams: Django users, by API token, HTTP Basic or their admin session.

`api_auth` is what a router's state-changing operations pass as `auth=`. A client that sends no
or wrong credentials gets 401 JSON. Checking a password costs a deliberately slow hash, and courier
apps post many times a second, so a verified (username, password) pair is remembered in the cache
for `API_BASIC_AUTH_CACHE_SECONDS`, together with the user's stored password hash at the time: each
request still loads the user, and a deactivated user or a changed password (a new stored hash)
takes effect at once. An API token (`Authorization: Bearer`) takes from its user's hourly call
limit; Basic and the session do not.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.core.cache import cache
from django.http import HttpRequest
from ninja.security import HttpBasicAuth, django_auth

from accounts.auth import ApiTokenAuth


def askable(username: str) -> bool:
    """Whether a username from a request can be looked up at all: PostgreSQL refuses text holding NUL, so such a
    name is no user's, and the request is unauthenticated (401), not a server error."""
    return "\x00" not in username


class DjangoUserBasicAuth(HttpBasicAuth):
    def authenticate(self, request: HttpRequest, username: str, password: str) -> Any:
        if not askable(username):
            return None
        key = "api-basic:" + hashlib.sha256(f"{settings.SECRET_KEY}\0{username}\0{password}".encode()).hexdigest()
        remembered = cache.get(key)
        if isinstance(remembered, tuple) and len(remembered) == 2:
            user_id, verified_hash = remembered
            user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
            if user is not None and user.password == verified_hash:
                return user
        user = authenticate(request, username=username, password=password)
        if user is None or not user.is_active:
            return None
        cache.set(key, (user.pk, user.password), settings.API_BASIC_AUTH_CACHE_SECONDS)
        return user


api_auth = [ApiTokenAuth(), DjangoUserBasicAuth(), django_auth]
