from django.db import models


class Region(models.Model):
    """A region with a weather station; `simulated` regions are read from the simulated sensor by a beat job."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    base_temperature_c = models.FloatField(default=15.0, help_text="The simulated sensor's daily mean.")
    simulated = models.BooleanField(default=True)
    last_sequence = models.BigIntegerField(default=0, editable=False, help_text="Readings published so far.")

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name
