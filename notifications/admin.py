from django.contrib import admin

from notifications.models import Notification, RegionSubscription


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "kind", "recipient", "subject", "event_id"]
    list_filter = ["kind"]
    search_fields = ["recipient", "=event_id"]


@admin.register(RegionSubscription)
class RegionSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["user", "region", "created_at"]
    list_filter = ["region"]
    search_fields = ["user__username", "user__email", "region"]
    autocomplete_fields = ["user"]
