from celery import shared_task
from django.conf import settings
from django.utils import timezone

from weather.services import demo_regions_ensure, simulated_readings_publish


@shared_task(name="weather.read_simulated_sensors")
def read_simulated_sensors() -> int:
    """The beat job of the simulated station (schedule: admin, Periodic tasks). Off with SIMULATION_ENABLED=False."""
    if not settings.SIMULATION_ENABLED:
        return 0
    demo_regions_ensure()
    return simulated_readings_publish(at=timezone.now().replace(microsecond=0))
