from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from payments import provider
from payments.models import Payment, ProviderSettings


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ["order_id", "status", "amount", "currency", "via", "reported", "provider_reference", "created_at"]
    list_filter = ["status", "via"]
    search_fields = ["=order_id", "provider_reference"]
    readonly_fields = [f.name for f in Payment._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ProviderSettings)
class ProviderSettingsAdmin(admin.ModelAdmin):
    """One row: how the simulated provider behaves (until it exists, PAYMENTS_PROVIDER_* from the environment)."""

    list_display = ["__str__", "failure_rate", "latency_ms", "down"]
    readonly_fields = ["calls_in_this_process"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not ProviderSettings.objects.exists()

    def save_model(self, request: HttpRequest, obj: ProviderSettings, form: Any, change: bool) -> None:
        obj.pk = 1
        super().save_model(request, obj, form, change)

    @admin.display(description="provider calls seen by this web process")
    def calls_in_this_process(self, obj: ProviderSettings) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(provider.calls.items())) or "none"
