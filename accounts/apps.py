from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save

        from accounts.services import user_registered_publish_on_create

        # The one edge where a Django signal is used: however a user is created (admin,
        # createsuperuser, API), its creation becomes a UserRegistered event.
        post_save.connect(user_registered_publish_on_create, sender=get_user_model(), dispatch_uid="accounts.user_registered")
