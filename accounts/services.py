from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import transaction

from accounts.events import UserRegistered, UserRegisteredV1
from events import publish


@transaction.atomic
def user_create(*, username: str, email: str, password: str | None = None) -> AbstractUser:
    return get_user_model().objects.create_user(username=username, email=email, password=password)


def user_registered_publish(*, user: AbstractUser) -> None:
    publish(
        UserRegistered,
        UserRegisteredV1(userId=str(user.pk), username=user.get_username(), email=user.email, dateJoined=user.date_joined),
        subject=f"user-{user.pk}",
    )


def user_registered_publish_on_create(
    sender: type, instance: AbstractUser, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    if created and not raw:
        user_registered_publish(user=instance)
