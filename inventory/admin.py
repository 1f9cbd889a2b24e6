from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from inventory.models import Reservation, Stock


@admin.register(Stock)
class StockAdmin(admin.ModelAdmin):
    list_display = ["sku", "available"]
    list_editable = ["available"]
    search_fields = ["sku"]


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = ["order_id", "status", "items", "missing", "created_at", "updated_at"]
    list_filter = ["status"]
    search_fields = ["=order_id"]
    readonly_fields = [f.name for f in Reservation._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
