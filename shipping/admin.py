from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from shipping.models import Shipment, ShippingOrder
from shipping.services import CannotShip, shipment_ship


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    list_display = ["order_id", "status", "city", "pincode", "tracking_number", "created_at", "shipped_at"]
    list_filter = ["status"]
    search_fields = ["=order_id", "tracking_number"]
    readonly_fields = [f.name for f in Shipment._meta.fields]
    actions = ["mark_shipped"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Hand to the carrier (OrderShipped)")
    def mark_shipped(self, request: HttpRequest, queryset: QuerySet[Shipment]) -> None:
        for shipment in queryset:
            try:
                shipment_ship(shipment_id=str(shipment.pk))
            except CannotShip as exc:
                self.message_user(request, str(exc), messages.WARNING)


@admin.register(ShippingOrder)
class ShippingOrderAdmin(admin.ModelAdmin):
    list_display = ["order_id", "city", "pincode", "cancelled", "received_at"]
    readonly_fields = [f.name for f in ShippingOrder._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
