from django.contrib import admin

from notifications.models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "kind", "recipient", "subject", "event_id"]
    list_filter = ["kind"]
    search_fields = ["recipient", "=event_id"]
