from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from weather import sensors
from weather.models import Region
from weather.services import reading_publish


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "base_temperature_c", "simulated", "last_sequence"]
    list_filter = ["simulated"]
    search_fields = ["slug", "name"]
    actions = ["read_sensor_now"]

    @admin.action(description="Read the simulated sensor now")
    def read_sensor_now(self, request: HttpRequest, queryset: QuerySet[Region]) -> None:
        at = timezone.now().replace(microsecond=0)
        for region in queryset:
            temperature, rain = sensors.read(region.slug, region.base_temperature_c, at)
            reading_publish(region=region, temperature_c=temperature, rain_mm_per_hour=rain, observed_at=at, station="admin")
        self.message_user(request, f"published {queryset.count()} reading(s)", messages.SUCCESS)
