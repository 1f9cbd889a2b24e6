import hashlib
import math
import secrets
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, UserManager
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.events import TokenLimitsRestored, TokenLimitsRestoredV1, UserRegistered, UserRegisteredV1
from accounts.models import ApiCallLimit, ApiToken, TokenLimitRestoration
from events import publish

TOKEN_PREFIX = "tok_"


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


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, user: AbstractUser, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`; returns it with its key, which is stored only as a hash."""
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name or "token", prefix=key[:12], key_hash=_key_hash(key))
    ApiCallLimit.objects.get_or_create(
        user=user, defaults={"calls_per_hour": settings.API_CALLS_PER_HOUR, "remaining": settings.API_CALLS_PER_HOUR}
    )
    return token, key


def api_token_user(*, key: str) -> AbstractUser | None:
    """The user a key belongs to, or None."""
    if not key.startswith(TOKEN_PREFIX):
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=_key_hash(key)).first()
    if token is None or not token.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user


def next_limit_refresh(now: datetime | None = None) -> datetime:
    """When the hourly job next restores the limits: the start of the next UTC hour."""
    now = (now or timezone.now()).astimezone(UTC)
    return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def seconds_until_refresh(now: datetime | None = None) -> int:
    now = now or timezone.now()
    return max(1, math.ceil((next_limit_refresh(now) - now).total_seconds()))


@transaction.atomic
def api_call_consume(*, user: AbstractUser) -> bool:
    """Take one call from the user's hourly limit; False when none is left.

    One conditional UPDATE: the database decides, so two concurrent calls never both take the
    last unit (PostgreSQL locks the row for the second, which then sees 0; SQLite has one writer).
    """
    taken = ApiCallLimit.objects.filter(user=user, remaining__gt=0).update(remaining=F("remaining") - 1)
    if taken:
        return True
    limit, created = ApiCallLimit.objects.get_or_create(
        user=user,
        defaults={"calls_per_hour": settings.API_CALLS_PER_HOUR, "remaining": max(0, settings.API_CALLS_PER_HOUR - 1)},
    )
    if created:
        return limit.calls_per_hour > 0
    # A concurrent first call created the row between the two statements: take from it like any call.
    return bool(ApiCallLimit.objects.filter(user=user, remaining__gt=0).update(remaining=F("remaining") - 1))


def hour_bucket(now: datetime | None = None) -> datetime:
    return (now or timezone.now()).astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@transaction.atomic
def token_limits_restore(*, now: datetime | None = None) -> TokenLimitRestoration | None:
    """Restore every user's hourly API limit and publish TokenLimitsRestored, once per UTC hour.

    The restoration row of the hour is unique: a second beat or a retry in the same hour finds it
    (or waits for the first transaction and then finds it) and does nothing; returns None then.
    """
    hour = hour_bucket(now)
    try:
        with transaction.atomic():
            restoration = TokenLimitRestoration.objects.create(hour=hour, users=0)
    except IntegrityError:
        return None
    restoration.users = ApiCallLimit.objects.update(remaining=F("calls_per_hour"), restored_at=timezone.now())
    restoration.save(update_fields=["users"])
    publish(
        TokenLimitsRestored,
        TokenLimitsRestoredV1(hour=hour, users=restoration.users, callsPerHour=settings.API_CALLS_PER_HOUR),
        subject=f"token-limits-{hour:%Y-%m-%dT%H}",
    )
    return restoration
