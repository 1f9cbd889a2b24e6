from django.contrib import admin

from analytics.models import DeliveryRoute


@admin.register(DeliveryRoute)
class DeliveryRouteAdmin(admin.ModelAdmin):
    list_display = ["delivery_id", "points", "distance", "speed", "first_sequence", "last_sequence", "late_skipped", "updated_at"]
    search_fields = ["=delivery_id"]
    readonly_fields = [f.name for f in DeliveryRoute._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False

    @admin.display(description="distance (m)", ordering="distance_m")
    def distance(self, route: DeliveryRoute) -> str:
        return f"{route.distance_m:.1f}"

    @admin.display(description="average speed (km/h)")
    def speed(self, route: DeliveryRoute) -> str:
        speed = route.average_speed_mps
        return "-" if speed is None else f"{speed * 3.6:.1f}"
