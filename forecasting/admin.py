from django.contrib import admin

from forecasting.models import Forecast


@admin.register(Forecast)
class ForecastAdmin(admin.ModelAdmin):
    list_display = ["region", "predicted_c", "after_sequence", "after_observed_at", "observations", "mae_c", "updated_at"]
    readonly_fields = [f.name for f in Forecast._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
