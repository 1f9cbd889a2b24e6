from django.db import models


class DeliveryProgress(models.Model):
    """Milestones of a delivery as the restaurant sees them. Each is reached once; its sequence and time
    are those of the earliest position (by sequence) that reached it, whatever the arrival order."""

    MILESTONES = ("picked_up", "nearby", "arrived")

    delivery_id = models.CharField(max_length=50, unique=True)
    picked_up_sequence = models.BigIntegerField(null=True)
    picked_up_at = models.DateTimeField(null=True)
    nearby_sequence = models.BigIntegerField(null=True)
    nearby_at = models.DateTimeField(null=True)
    arrived_sequence = models.BigIntegerField(null=True)
    arrived_at = models.DateTimeField(null=True)
    late_skipped = models.PositiveIntegerField(default=0, help_text="Updates older than RESTAURANT_MAX_AGE_SECONDS on arrival.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        verbose_name_plural = "delivery progress"

    def __str__(self) -> str:
        return f"delivery {self.delivery_id}: {self.status}"

    @property
    def status(self) -> str:
        for milestone in reversed(self.MILESTONES):
            if getattr(self, f"{milestone}_sequence") is not None:
                return milestone.replace("_", " ")
        return "on the way to pick up"


class Transition(models.Model):
    """The moment a milestone was first reached: one row per (delivery, milestone)."""

    delivery_id = models.CharField(max_length=50)
    milestone = models.CharField(max_length=20)
    sequence = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["delivery_id", "milestone"], name="transition_once")]
