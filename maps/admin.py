from django.contrib import admin

from maps.models import RegionWeather


@admin.register(RegionWeather)
class RegionWeatherAdmin(admin.ModelAdmin):
    list_display = ["region", "temperature_c", "rain_mm_per_hour", "observed_at", "sequence", "older_ignored", "updated_at"]
    readonly_fields = [f.name for f in RegionWeather._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
