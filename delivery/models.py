from django.conf import settings
from django.db import models


class Courier(models.Model):
    """Someone who delivers; `user` is the account whose credentials its app posts positions with."""

    name = models.CharField(max_length=100)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    simulated = models.BooleanField(default=False, help_text="Moved by the simulation job of `make run`.")
    simulation_sequence = models.BigIntegerField(default=0, editable=False)

    def __str__(self) -> str:
        return self.name


class Delivery(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        COMPLETED = "completed"

    courier = models.ForeignKey(Courier, on_delete=models.PROTECT, related_name="deliveries")
    pickup_lat = models.FloatField()
    pickup_lon = models.FloatField()
    dropoff_lat = models.FloatField()
    dropoff_lon = models.FloatField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["courier"], condition=models.Q(status="active"), name="one_active_delivery_per_courier"
            )
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} by {self.courier}"
