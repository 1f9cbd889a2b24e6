from celery import shared_task
from django.conf import settings
from django.utils import timezone

from delivery.simulation import courier_simulate, simulated_couriers_ensure


@shared_task(name="delivery.move_simulated_couriers")
def move_simulated_couriers() -> int:
    """The beat job of the simulated couriers (schedule: admin, Periodic tasks). Off with SIMULATION_ENABLED=False."""
    if not settings.SIMULATION_ENABLED:
        return 0
    now = timezone.now()
    return sum(courier_simulate(courier=courier, now=now) for courier in simulated_couriers_ensure())
