from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, UserManager
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.events import UserRegistered, UserRegisteredV1
from events import publish


class UsernameTaken(ValidationError):
    def __init__(self, username: str) -> None:
        super().__init__({"username": f"A user named {username!r} already exists."}, code="unique")
        self.username = username


@transaction.atomic
def user_register(
    *, username: str, email: str, password: str | None = None, is_staff: bool = False, is_superuser: bool = False
) -> AbstractUser:
    """Create a user and publish UserRegistered with it, in one transaction.

    Every way a user comes into being (API, admin, createsuperuser, demo_setup) goes through here.
    The username must pass the user model's validators, the email must be a valid address, and a
    username may be taken once whatever its case (UsernameTaken). Password policy
    (AUTH_PASSWORD_VALIDATORS) is the caller's to apply, as in Django's own forms and commands;
    without a password the user cannot log in until one is set.
    """
    User = get_user_model()
    user = User(
        username=User.normalize_username(username or ""),
        email=UserManager.normalize_email(email or ""),
        is_staff=is_staff,
        is_superuser=is_superuser,
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean(exclude=["password"], validate_unique=False)
    if not user.email:
        raise ValidationError({"email": "An email address is required: the welcome email goes there."}, code="required")
    if User.objects.filter(username__iexact=user.username).exists():
        raise UsernameTaken(user.username)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:  # registered concurrently between the check and the insert
        raise UsernameTaken(user.username) from exc
    publish(
        UserRegistered,
        UserRegisteredV1(userId=str(user.pk), username=user.get_username(), email=user.email, dateJoined=user.date_joined),
        subject=f"user-{user.pk}",
    )
    return user
