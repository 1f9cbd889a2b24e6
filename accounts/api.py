from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from ninja.security import HttpBasicAuth
from pydantic import ValidationInfo, field_validator

from accounts.models import ApiCallLimit
from accounts.services import UsernameTaken, api_token_create, next_limit_refresh, user_register
from project.schemas import AUTH_ERRORS, BODY_ERRORS, ErrorOut

User = get_user_model()

router = Router(tags=["users"])
tokens_router = Router(tags=["tokens"])


def _django_check(validator: Callable[[Any], object], value: Any) -> Any:
    """Apply a Django validator inside a pydantic one, keeping Django's message."""
    try:
        validator(value)
    except ValidationError as exc:
        raise ValueError(" ".join(exc.messages)) from None
    return value


class UserRegistration(Schema):
    username: str = Field(
        min_length=1,
        max_length=User._meta.get_field("username").max_length,
        description="Letters, digits and @ . + - _ only.",
        json_schema_extra={"pattern": r"^[\w.@+-]+$"},
    )
    email: str = Field(max_length=User._meta.get_field("email").max_length, json_schema_extra={"format": "email"})
    password: str | None = Field(
        default=None,
        max_length=4096,
        description="Must pass the password rules (long enough, not common, not all digits, not like the username "
        "or email). Without one the user cannot log in until a password is set.",
    )

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        return _django_check(User.username_validator, value)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return _django_check(validate_email, value)

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        would_be = User(username=info.data.get("username", ""), email=info.data.get("email", ""))
        return _django_check(lambda password: validate_password(password, would_be), value)


class UserOut(Schema):
    id: int
    username: str
    email: str


# Registration is sign-up: anonymous clients may call it. Every other API requires a token.
@router.post("", response={201: UserOut, 409: ErrorOut, **BODY_ERRORS}, auth=None, include_in_schema=False)
@router.post(
    "/", response={201: UserOut, 409: ErrorOut, **BODY_ERRORS}, auth=None, url_name="user-register", summary="Register a user"
)
def user_register_view(request: HttpRequest, payload: UserRegistration) -> Status:
    """Create a user; its UserRegistered event makes the notifications service send a welcome email."""
    try:
        user = user_register(username=payload.username, email=payload.email, password=payload.password)
    except UsernameTaken as exc:
        return Status(409, {"detail": f"the username {exc.username!r} is taken"})
    return Status(201, user)


class CallLimitOut(Schema):
    callsPerHour: int
    remaining: int
    restoredAt: str = Field(description="When the limits are next restored (UTC).")


class MeOut(UserOut):
    apiCalls: CallLimitOut


@router.get("/me/", response={200: MeOut, **AUTH_ERRORS}, include_in_schema=False)
@router.get("/me", response={200: MeOut, **AUTH_ERRORS}, summary="The user of the token")
def user_me(request: HttpRequest) -> dict[str, Any]:
    """Who the token belongs to, and the API calls left this hour (this call included)."""
    user = request.auth
    limit = ApiCallLimit.objects.get(user=user)
    return {
        "id": user.pk,
        "username": user.get_username(),
        "email": user.email,
        "apiCalls": {
            "callsPerHour": limit.calls_per_hour,
            "remaining": limit.remaining,
            "restoredAt": next_limit_refresh().isoformat().replace("+00:00", "Z"),
        },
    }


class PasswordAuth(HttpBasicAuth):
    def authenticate(self, request: HttpRequest, username: str, password: str) -> Any:
        from django.contrib.auth import authenticate

        from project.auth import askable

        if not askable(username):
            return None
        return authenticate(request, username=username, password=password)


class TokenRequest(Schema):
    name: str = Field(default="token", min_length=1, max_length=100)


class TokenOut(Schema):
    name: str
    key: str = Field(description="Send it as `Authorization: Bearer <key>`. Shown only now.")


@tokens_router.post("", response={201: TokenOut, 401: ErrorOut, **BODY_ERRORS}, auth=PasswordAuth(), include_in_schema=False)
@tokens_router.post(
    "/", response={201: TokenOut, 401: ErrorOut, **BODY_ERRORS}, auth=PasswordAuth(), summary="Create an API token"
)
def token_create_view(request: HttpRequest, payload: TokenRequest) -> Status:
    """Log in with HTTP Basic (username and password) to get a bearer token for the other APIs."""
    token, key = api_token_create(user=request.auth, name=payload.name)
    return Status(201, {"name": token.name, "key": key})
