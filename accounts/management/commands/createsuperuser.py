"""Django's createsuperuser, creating the user through accounts.services.user_register.

The superuser is registered like any other user, its UserRegistered event in the same
transaction. Options, environment variables (DJANGO_SUPERUSER_USERNAME, _EMAIL, _PASSWORD with
--noinput) and prompts are Django's; an email address is required.
"""

import getpass
import os
from typing import Any

from django.contrib.auth.management import get_default_username
from django.contrib.auth.management.commands import createsuperuser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS

from accounts.services import user_register


class Command(createsuperuser.Command):
    help = "Create a superuser (and publish UserRegistered for it)."

    def handle(self, *args: Any, **options: Any) -> None:
        if options["database"] != DEFAULT_DB_ALIAS:
            raise CommandError("users are registered in the default database only")
        try:
            if options["interactive"]:
                if hasattr(self.stdin, "isatty") and not self.stdin.isatty():
                    raise createsuperuser.NotRunningInTTYException
                username, email, password = self._ask(options)
            else:
                username, email, password = self._from_options_and_environment(options)
            user_register(username=username, email=email, password=password, is_staff=True, is_superuser=True)
        except KeyboardInterrupt:
            self.stderr.write("\nOperation cancelled.")
            raise SystemExit(1) from None
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        except createsuperuser.NotRunningInTTYException:
            self.stdout.write(
                "Superuser creation skipped due to not running in a TTY. "
                "You can run `manage.py createsuperuser` in your project to create one manually."
            )
            return
        if options["verbosity"] >= 1:
            self.stdout.write("Superuser created successfully.")

    def _from_options_and_environment(self, options: dict[str, Any]) -> tuple[str, str, str | None]:
        username = options["username"] or os.environ.get("DJANGO_SUPERUSER_USERNAME")
        email = options["email"] or os.environ.get("DJANGO_SUPERUSER_EMAIL")
        if not username:
            raise CommandError("You must use --username with --noinput.")
        if not email:
            raise CommandError("You must use --email with --noinput.")
        if error := self._validate_username(username, "Username", DEFAULT_DB_ALIAS):
            raise CommandError(error)
        return username, email, os.environ.get("DJANGO_SUPERUSER_PASSWORD")

    def _ask(self, options: dict[str, Any]) -> tuple[str, str, str]:
        username = options["username"]
        if username == "":
            raise CommandError("Username cannot be blank.")
        default = get_default_username(database=DEFAULT_DB_ALIAS)
        while True:
            if username:
                if not (error := self._validate_username(username, "Username", DEFAULT_DB_ALIAS)):
                    break
                self.stderr.write(error)
            username = self.get_input_data(self.username_field, self._get_input_message(self.username_field, default), default)
        email_field = self.UserModel._meta.get_field("email")
        email = options["email"]
        while not email:
            email = self.get_input_data(email_field, self._get_input_message(email_field))
            if not email:
                self.stderr.write("Error: An email address is required: the welcome email goes there.")
        while True:
            password = getpass.getpass()
            if password != getpass.getpass("Password (again): "):
                self.stderr.write("Error: Your passwords didn't match.")
                continue
            if not password.strip():
                self.stderr.write("Error: Blank passwords aren't allowed.")
                continue
            try:
                validate_password(password, self.UserModel(username=username, email=email))
            except ValidationError as exc:
                self.stderr.write("\n".join(exc.messages))
                if input("Bypass password validation and create user anyway? [y/N]: ").lower() != "y":
                    continue
            return username, email, password
