from django.contrib import admin

from delivery.models import Courier, Delivery


@admin.register(Courier)
class CourierAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "user", "simulated"]
    search_fields = ["name", "user__username"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "courier", "status", "pickup_lat", "pickup_lon", "dropoff_lat", "dropoff_lon", "created_at"]
    list_filter = ["status"]
    search_fields = ["=id", "courier__name"]
