from django.db import models


class RegionWeather(models.Model):
    """The latest reading per region: never replaced by an older one (observation time, then sequence)."""

    region = models.SlugField(unique=True)
    sequence = models.BigIntegerField()
    temperature_c = models.FloatField()
    rain_mm_per_hour = models.FloatField()
    observed_at = models.DateTimeField()
    older_ignored = models.PositiveIntegerField(default=0, help_text="Readings that arrived after a newer one.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["region"]
        verbose_name_plural = "region weather"

    def __str__(self) -> str:
        return f"{self.region}: {self.temperature_c} °C"
