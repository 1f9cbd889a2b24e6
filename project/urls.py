from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from events import views as events_views
from events.observability import health, metrics
from project import beat_admin  # noqa: F401 - the periodic tasks' next run in the admin
from project.api import api

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("health/", health.HealthView.as_view(), name="health"),
    path("metrics", metrics.view, name="metrics"),
    path("events/catalogue/", events_views.catalogue, name="events-catalogue"),
]
