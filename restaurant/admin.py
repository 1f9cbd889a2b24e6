from django.contrib import admin

from restaurant.models import DeliveryProgress, Transition


@admin.register(DeliveryProgress)
class DeliveryProgressAdmin(admin.ModelAdmin):
    list_display = ["delivery_id", "status", "picked_up_at", "nearby_at", "arrived_at", "late_skipped", "updated_at"]
    search_fields = ["=delivery_id"]
    readonly_fields = [f.name for f in DeliveryProgress._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(Transition)
class TransitionAdmin(admin.ModelAdmin):
    list_display = ["created_at", "delivery_id", "milestone", "sequence"]
    list_filter = ["milestone"]
    search_fields = ["=delivery_id"]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
