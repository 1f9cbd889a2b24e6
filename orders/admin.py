from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone

from orders import store
from orders.domain import CannotCancel
from orders.models import OrderSummary, Product
from orders.services import order_cancel, order_place

LINES = 5


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "price", "currency"]
    search_fields = ["sku", "name"]


class OrderPlaceForm(forms.ModelForm):
    """Place an order for a customer: the same service the API calls."""

    customer = forms.ModelChoiceField(queryset=get_user_model().objects.order_by("username"))
    city = forms.CharField(max_length=200)
    pincode = forms.CharField(max_length=20)

    class Meta:
        model = OrderSummary
        fields: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for n in range(LINES):
            self.fields[f"product_{n}"] = forms.ModelChoiceField(
                queryset=Product.objects.all(), required=n == 0, label=f"Item {n + 1}"
            )
            self.fields[f"quantity_{n}"] = forms.IntegerField(min_value=1, initial=1, required=n == 0, label="quantity")

    def items(self) -> list[tuple[str, int]]:
        lines = []
        for n in range(LINES):
            product, quantity = self.cleaned_data.get(f"product_{n}"), self.cleaned_data.get(f"quantity_{n}")
            if product is not None:
                lines.append((product.sku, quantity or 1))
        return lines

    def place(self) -> OrderSummary:
        data = self.cleaned_data
        try:
            order = order_place(
                customer=data["customer"], items=self.items(), shipping_address={"city": data["city"], "pincode": data["pincode"]}
            )
        except ValidationError as exc:
            self.add_error(None, exc)
            raise
        return OrderSummary.objects.get(order_id=order.id)

    def _post_clean(self) -> None:  # no model instance to validate: the service does it
        pass


@admin.register(OrderSummary)
class OrderAdmin(admin.ModelAdmin):
    """The order list is the read model; an order's page shows its events and its state at any past moment."""

    list_display = [
        "order_id",
        "customer",
        "status",
        "payment",
        "stock",
        "total",
        "currency",
        "item_count",
        "version",
        "last_change_at",
    ]
    list_filter = ["status", "payment", "stock"]
    search_fields = ["=order_id", "customer__username"]
    date_hierarchy = "last_change_at"
    actions = ["cancel_orders"]
    add_form = OrderPlaceForm
    change_form_template = "admin/orders/ordersummary/change_form.html"

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            return OrderPlaceForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            lines = [(f"product_{n}", f"quantity_{n}") for n in range(LINES)]
            return [(None, {"fields": ["customer", *lines, "city", "pincode"]})]
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        return [f.name for f in OrderSummary._meta.fields]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        summary = form.place()
        for field in OrderSummary._meta.concrete_fields:
            setattr(obj, field.attname, getattr(summary, field.attname))
        obj._state.adding, obj._state.db = False, summary._state.db

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: str | None = None) -> HttpResponse:
        self.message_user(request, f"{obj.order_id} placed; payment and stock follow as events.")
        return HttpResponseRedirect(reverse("admin:orders_ordersummary_change", args=[obj.order_id]))

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        try:
            return super().add_view(request, form_url, extra_context)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        summary = get_object_or_404(OrderSummary, pk=object_id)
        events = store.history(summary.order_id)
        raw = request.GET.get("as_of", "")
        moment = None
        if raw:
            try:
                moment = datetime.fromisoformat(raw)
                if timezone.is_naive(moment):
                    moment = timezone.make_aware(moment, timezone.get_current_timezone())
            except ValueError:
                self.message_user(request, f"{raw!r} is not a date and time (YYYY-MM-DDTHH:MM:SS)", messages.ERROR)
        state = store.as_of(summary.order_id, moment) if moment else store.of_events(summary.order_id, events)
        extra_context = {
            **(extra_context or {}),
            "events": events,
            "state": state,
            "as_of": moment,
            "as_of_value": timezone.localtime(moment or timezone.now()).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
            "cancel_url": reverse("admin:orders_ordersummary_cancel", args=[summary.order_id]),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self) -> list[Any]:
        return [
            path("<str:order_id>/cancel/", self.admin_site.admin_view(self.cancel_view), name="orders_ordersummary_cancel"),
            *super().get_urls(),
        ]

    def cancel_view(self, request: HttpRequest, order_id: str) -> HttpResponse:
        if request.method == "POST" and self.has_view_permission(request):
            self._cancel(request, order_id, request.POST.get("reason", "") or "cancelled in the admin")
        return HttpResponseRedirect(reverse("admin:orders_ordersummary_change", args=[order_id]))

    def _cancel(self, request: HttpRequest, order_id: str, reason: str) -> None:
        try:
            order_cancel(order_id=order_id, reason=reason)
            self.message_user(request, f"{order_id} cancelled: payments refunds and inventory releases what they hold.")
        except CannotCancel as exc:
            self.message_user(request, str(exc), messages.WARNING)

    @admin.action(description="Cancel selected orders")
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet[OrderSummary]) -> None:
        for summary in queryset:
            self._cancel(request, summary.order_id, "cancelled in the admin")
