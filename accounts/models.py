from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A bearer token for the JSON APIs. Only a hash of the key is kept; the key is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'laptop'.")
    prefix = models.CharField(max_length=16, editable=False, help_text="The key's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"


class ApiCallLimit(models.Model):
    """A user's API calls for the current UTC hour, shared by all the user's tokens."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="api_call_limit"
    )
    calls_per_hour = models.PositiveIntegerField(help_text="Restored by the hourly job.")
    remaining = models.PositiveIntegerField()
    restored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API call limit"

    def __str__(self) -> str:
        return f"{self.user}: {self.remaining}/{self.calls_per_hour}"


class TokenLimitRestoration(models.Model):
    """One row per UTC hour in which the limits were restored: the hourly job's once-per-hour rule."""

    hour = models.DateTimeField(unique=True, help_text="Start of the UTC hour (the bucket).")
    users = models.PositiveIntegerField(help_text="Limits restored.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-hour"]

    def __str__(self) -> str:
        return f"limits restored for {self.hour:%Y-%m-%d %H:00} UTC"
