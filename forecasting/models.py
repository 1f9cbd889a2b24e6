from django.db import models


class Observation(models.Model):
    """The recent readings forecasting works from (the last FORECASTING_WINDOW per region)."""

    region = models.SlugField()
    sequence = models.BigIntegerField()
    observed_at = models.DateTimeField()
    temperature_c = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["region", "sequence"], name="forecasting_observation_unique")]


class Forecast(models.Model):
    """A region's next temperature, predicted from its recent readings (forecasting/method.py)."""

    region = models.SlugField(unique=True)
    predicted_c = models.FloatField(help_text="The next reading's temperature, °C.")
    after_sequence = models.BigIntegerField(help_text="Predicts the reading after this one.")
    after_observed_at = models.DateTimeField()
    observations = models.PositiveIntegerField()
    mae_c = models.FloatField(null=True, help_text="Mean absolute one-step error over the window, °C.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["region"]

    def __str__(self) -> str:
        return f"{self.region}: {self.predicted_c:.1f} °C next"
