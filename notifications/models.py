from django.conf import settings
from django.db import models


class Notification(models.Model):
    """An in-app notification; `event_id` names the event that caused it."""

    recipient = models.EmailField()
    kind = models.CharField(max_length=50)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    event_id = models.CharField(max_length=200, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient}"


class RegionSubscription(models.Model):
    """A user who wants rain alerts for a weather region."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="region_subscriptions")
    region = models.SlugField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["region", "user_id"]
        constraints = [models.UniqueConstraint(fields=["user", "region"], name="region_subscription_unique")]

    def __str__(self) -> str:
        return f"{self.user} follows {self.region}"
