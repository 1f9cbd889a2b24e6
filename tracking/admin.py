from django.contrib import admin

from tracking.models import DeliveryPosition


@admin.register(DeliveryPosition)
class DeliveryPositionAdmin(admin.ModelAdmin):
    list_display = [
        "delivery_id",
        "courier_id",
        "sequence",
        "lat",
        "lon",
        "recorded_at",
        "updated_at",
        "older_ignored",
        "late_skipped",
    ]
    search_fields = ["=delivery_id", "=courier_id"]
    readonly_fields = [f.name for f in DeliveryPosition._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
