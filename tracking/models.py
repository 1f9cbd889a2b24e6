from django.db import models


class DeliveryPosition(models.Model):
    """A delivery's latest position: the highest sequence seen, whatever the arrival order."""

    delivery_id = models.CharField(max_length=50, unique=True)
    courier_id = models.CharField(max_length=50)
    sequence = models.BigIntegerField(null=True)
    lat = models.FloatField(null=True)
    lon = models.FloatField(null=True)
    recorded_at = models.DateTimeField(null=True)
    updated_at = models.DateTimeField(auto_now=True)
    older_ignored = models.PositiveIntegerField(default=0, help_text="Updates older (by sequence) than the one held.")
    late_skipped = models.PositiveIntegerField(default=0, help_text="Updates older than TRACKING_MAX_AGE_SECONDS on arrival.")

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"delivery {self.delivery_id} at #{self.sequence}"
