from django.db import models


class DeliveryRoute(models.Model):
    """A delivery's distance (haversine, along its positions in sequence order) and average speed."""

    delivery_id = models.CharField(max_length=50, unique=True)
    points = models.PositiveIntegerField(default=0)
    distance_m = models.FloatField(default=0.0)
    first_sequence = models.BigIntegerField(null=True)
    first_at = models.DateTimeField(null=True)
    last_sequence = models.BigIntegerField(null=True)
    last_at = models.DateTimeField(null=True)
    # The point at last_sequence, kept here so that positions arriving in order need no read of the route's points.
    last_lat = models.FloatField(null=True, editable=False)
    last_lon = models.FloatField(null=True, editable=False)
    late_skipped = models.PositiveIntegerField(default=0, help_text="Updates older than ANALYTICS_MAX_AGE_SECONDS on arrival.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"delivery {self.delivery_id}: {self.distance_m:.0f} m"

    @property
    def average_speed_mps(self) -> float | None:
        if self.first_at is None or self.last_at is None:
            return None
        seconds = (self.last_at - self.first_at).total_seconds()
        return self.distance_m / seconds if seconds > 0 else None


class RoutePoint(models.Model):
    delivery_id = models.CharField(max_length=50)
    sequence = models.BigIntegerField()
    lat = models.FloatField()
    lon = models.FloatField()
    recorded_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["delivery_id", "sequence"], name="route_point_unique")]
