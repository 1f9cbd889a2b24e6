from django.db import models


class Reading(models.Model):
    """Every reading of every region, once."""

    region = models.SlugField()
    sequence = models.BigIntegerField()
    temperature_c = models.FloatField()
    rain_mm_per_hour = models.FloatField()
    observed_at = models.DateTimeField()
    station = models.CharField(max_length=100)
    event_id = models.CharField(max_length=200)
    stored_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-observed_at", "-sequence"]
        constraints = [models.UniqueConstraint(fields=["region", "sequence"], name="history_reading_unique")]
        indexes = [models.Index(fields=["region", "observed_at"])]

    def __str__(self) -> str:
        return f"{self.region} #{self.sequence}: {self.temperature_c} °C"
