from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import admin as auth_admin  # registers Django's UserAdmin, replaced below
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AdminUserCreationForm
from django.contrib.auth.models import AbstractUser
from django.http import HttpRequest

from accounts.models import ApiCallLimit, ApiToken, TokenLimitRestoration
from accounts.services import api_token_create, user_register

User = get_user_model()


class UserRegistrationForm(AdminUserCreationForm):
    """Django's add-user form, with the email the welcome email goes to."""

    email = forms.EmailField(required=True, help_text="The welcome email goes here.")

    class Meta(AdminUserCreationForm.Meta):
        fields = ("username", "email")

    def register(self) -> AbstractUser:
        data = self.cleaned_data
        password = data["password1"] if data.get("set_usable_password") else None
        return user_register(username=data["username"], email=data["email"], password=password)


admin.site.unregister(User)


@admin.register(User)
class UserAdmin(auth_admin.UserAdmin):
    add_form = UserRegistrationForm
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "usable_password", "password1", "password2")}),
    )

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        user = form.register()
        # The admin goes on (history, messages, redirect) with the object its form built: make it the
        # user the service created.
        for field in User._meta.concrete_fields:
            setattr(obj, field.attname, getattr(user, field.attname))
        obj._state.adding, obj._state.db = False, user._state.db


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("user", "name")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = ApiTokenForm
    list_display = ["prefix", "name", "user", "created_at", "last_used_at"]
    search_fields = ["user__username", "name", "prefix"]
    raw_id_fields = ["user"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:
        token, key = api_token_create(user=form.cleaned_data["user"], name=form.cleaned_data["name"])
        obj.pk, obj.prefix, obj.key_hash, obj.created_at = token.pk, token.prefix, token.key_hash, token.created_at
        obj._state.adding = False
        messages.warning(request, f"The token's key, shown only now: {key}")


@admin.register(ApiCallLimit)
class ApiCallLimitAdmin(admin.ModelAdmin):
    list_display = ["user", "remaining", "calls_per_hour", "restored_at"]
    list_editable = ["calls_per_hour"]
    search_fields = ["user__username"]
    raw_id_fields = ["user"]


@admin.register(TokenLimitRestoration)
class TokenLimitRestorationAdmin(admin.ModelAdmin):
    list_display = ["hour", "users", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
