from django.db import models
from django.db.models import Q


class Stock(models.Model):
    """Units on hand of one product (same SKU as the orders catalogue)."""

    sku = models.CharField("SKU", max_length=50, primary_key=True)
    available = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["sku"]
        verbose_name_plural = "stock"
        constraints = [models.CheckConstraint(condition=Q(available__gte=0), name="stock_available_not_negative")]

    def __str__(self) -> str:
        return f"{self.sku}: {self.available}"


class Reservation(models.Model):
    """What inventory did for one order."""

    class Status(models.TextChoices):
        RESERVED = "reserved"
        OUT_OF_STOCK = "out_of_stock", "out of stock"
        RELEASED = "released"
        CANCELLED = "cancelled", "cancelled before any reservation"

    order_id = models.CharField(max_length=50, primary_key=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    items = models.JSONField(default=list, help_text="[{productId, quantity}] as the orders API returned them")
    missing = models.JSONField(default=list, blank=True)
    # OrderPlaced as this service reads it (1.0: a notification; the items come from the orders API).
    event_data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.order_id} {self.status}"
