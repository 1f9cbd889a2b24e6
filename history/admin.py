from django.contrib import admin

from history.models import Reading


@admin.register(Reading)
class ReadingAdmin(admin.ModelAdmin):
    list_display = ["observed_at", "region", "sequence", "temperature_c", "rain_mm_per_hour", "station"]
    list_filter = ["region", "station"]
    date_hierarchy = "observed_at"
    readonly_fields = [f.name for f in Reading._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
