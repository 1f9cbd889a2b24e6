import uuid

from django.db import models


class ShippingOrder(models.Model):
    """What shipping knows of an order, from the state OrderPlaced 2.1 carries: no call back needed."""

    order_id = models.CharField(max_length=50, primary_key=True)
    user_id = models.CharField(max_length=50, blank=True, default="")
    city = models.CharField(max_length=200)
    pincode = models.CharField(max_length=20)
    items = models.JSONField(default=list)
    # OrderPlaced exactly as this service reads it (2.1).
    event_data = models.JSONField(default=dict)
    cancelled = models.BooleanField(default=False)
    received_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.order_id


class Shipment(models.Model):
    class Status(models.TextChoices):
        CREATED = "created"
        SHIPPED = "shipped"
        CANCELLED = "cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order_id = models.CharField(max_length=50, unique=True)
    user_id = models.CharField(max_length=50, blank=True, default="")
    city = models.CharField(max_length=200)
    pincode = models.CharField(max_length=20)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CREATED, db_index=True)
    tracking_number = models.CharField(max_length=50, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    shipped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.order_id} → {self.city} ({self.status})"
