from datetime import datetime

from django.conf import settings
from django.db import transaction

from forecasting.method import holt
from forecasting.models import Forecast, Observation


@transaction.atomic
def forecast_update(*, region: str, sequence: int, observed_at: datetime, temperature_c: float) -> Forecast | None:
    """Add a reading and predict the region's next one from the last FORECASTING_WINDOW readings in sequence order.

    A reading older than the whole window changes nothing; the result does not depend on arrival order.
    """
    window = settings.FORECASTING_WINDOW
    Forecast.objects.select_for_update().filter(region=region).first()  # concurrent readings of a region take turns
    observations = Observation.objects.filter(region=region)
    kept = list(observations.order_by("-sequence").values_list("sequence", flat=True)[:window])
    if len(kept) >= window and sequence < kept[-1]:
        return Forecast.objects.filter(region=region).first()
    Observation.objects.get_or_create(
        region=region, sequence=sequence, defaults={"observed_at": observed_at, "temperature_c": temperature_c}
    )
    recent = list(observations.order_by("-sequence")[:window])[::-1]
    observations.filter(sequence__lt=recent[0].sequence).delete()
    predicted, errors = holt([o.temperature_c for o in recent])
    forecast, _ = Forecast.objects.update_or_create(
        region=region,
        defaults={
            "predicted_c": round(predicted, 3),
            "after_sequence": recent[-1].sequence,
            "after_observed_at": recent[-1].observed_at,
            "observations": len(recent),
            "mae_c": round(sum(abs(e) for e in errors) / len(errors), 3) if errors else None,
        },
    )
    return forecast
