from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from pydantic import ValidationInfo, field_validator

from accounts.services import UsernameTaken, user_register
from project.schemas import BODY_ERRORS, ErrorOut

User = get_user_model()

router = Router(tags=["users"])


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


# Registration is sign-up: anonymous clients may call it. Every other state-changing API will
# require a token.
@router.post("", response={201: UserOut, 409: ErrorOut, **BODY_ERRORS}, include_in_schema=False)
@router.post("/", response={201: UserOut, 409: ErrorOut, **BODY_ERRORS}, url_name="user-register", summary="Register a user")
def user_register_view(request: HttpRequest, payload: UserRegistration) -> Status:
    """Create a user; its UserRegistered event makes the notifications service send a welcome email."""
    try:
        user = user_register(username=payload.username, email=payload.email, password=payload.password)
    except UsernameTaken as exc:
        return Status(409, {"detail": f"the username {exc.username!r} is taken"})
    return Status(201, user)
