from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Event bus"

    def ready(self) -> None:
        # Event types live in each app's events.py, handlers in its handlers.py.
        autodiscover_modules("events", "handlers")
        from events import handling  # noqa: F401 - registers the events.handle task
