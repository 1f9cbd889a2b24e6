from celery import shared_task
from django.db import DatabaseError

from accounts.services import token_limits_restore


@shared_task(
    name="accounts.restore_token_limits", queue="accounts", autoretry_for=(DatabaseError,), retry_backoff=2, max_retries=5
)
def restore_token_limits() -> str:
    """The hourly beat job; a second beat or a retry in the same UTC hour does nothing."""
    restoration = token_limits_restore()
    return str(restoration) if restoration else "already restored this hour"
