from django.conf import settings
from django.db import models


class Product(models.Model):
    """The catalogue orders are placed from. Stock lives with inventory, keyed by the same SKU."""

    sku = models.CharField("SKU", max_length=50, primary_key=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")

    class Meta:
        ordering = ["sku"]

    def __str__(self) -> str:
        return f"{self.sku} {self.name} ({self.price} {self.currency})"


class OrderSummary(models.Model):
    """Read model: one row per order, a projection of the event log (rebuild: manage.py rebuild_projections).

    Never written except by orders.projections; `version` is the last event of the order's stream
    folded into the row.
    """

    order_id = models.CharField(max_length=50, primary_key=True)
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    status = models.CharField(max_length=20, db_index=True)
    payment = models.CharField(max_length=20)
    stock = models.CharField(max_length=20)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    item_count = models.PositiveIntegerField()
    city = models.CharField(max_length=200, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    version = models.PositiveIntegerField()
    placed_at = models.DateTimeField(null=True)
    last_change_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-last_change_at"]
        verbose_name = "order"
        verbose_name_plural = "orders"

    def __str__(self) -> str:
        return self.order_id
