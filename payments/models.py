from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Payment(models.Model):
    """One per order: the charge, or the record that the order was cancelled before any charge."""

    class Status(models.TextChoices):
        CAPTURED = "captured"
        DECLINED = "declined"
        REFUNDED = "refunded"
        CANCELLED = "cancelled", "cancelled before any charge"

    order_id = models.CharField(max_length=50, unique=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    provider_reference = models.CharField(max_length=100, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    via = models.CharField(max_length=10, help_text="event: OrderPlaced; http: the synchronous checkout")
    # What the charge was made from: OrderPlaced as this service reads it (2.2), or the HTTP request.
    request_data = models.JSONField(default=dict, blank=True)
    # True once the outcome is in the order's stream (PaymentCaptured / PaymentFailed).
    reported = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.order_id} {self.status} {self.amount} {self.currency}"


class ProviderSettings(models.Model):
    """The simulated payment provider's behaviour; one row, editable in the admin (defaults from the environment)."""

    failure_rate = models.FloatField(
        default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)], help_text="share of charges declined, 0 to 1"
    )
    latency_ms = models.PositiveIntegerField(default=0, help_text="how long each provider call takes")
    down = models.BooleanField(default=False, help_text="every call fails as if the provider were unreachable")

    class Meta:
        verbose_name = verbose_name_plural = "payment provider settings"

    def __str__(self) -> str:
        return f"failure rate {self.failure_rate:.0%}, latency {self.latency_ms} ms" + (", down" if self.down else "")

    @classmethod
    def current(cls) -> "ProviderSettings":
        row = cls.objects.filter(pk=1).first()
        if row is not None:
            return row
        return cls(
            pk=1,
            failure_rate=settings.PAYMENTS_PROVIDER_FAILURE_RATE,
            latency_ms=settings.PAYMENTS_PROVIDER_LATENCY_MS,
            down=settings.PAYMENTS_PROVIDER_DOWN,
        )
