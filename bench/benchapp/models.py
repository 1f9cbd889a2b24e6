from django.db import models


class BenchMarker(models.Model):
    """Written by the bench task when asked to: the worker's wall-clock time at that point."""

    name = models.CharField(max_length=50, db_index=True)
    at = models.FloatField()
