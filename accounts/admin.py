from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import admin as auth_admin  # registers Django's UserAdmin, replaced below
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AdminUserCreationForm
from django.contrib.auth.models import AbstractUser
from django.http import HttpRequest

from accounts.services import user_register

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
