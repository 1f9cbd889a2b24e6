from django.contrib.auth import get_user_model


def customer_email(*, user_id: str) -> str:
    """The address of the customer an event names, or "" (the notification is kept, no email is sent)."""
    if not user_id.isdigit():
        return ""
    return get_user_model().objects.filter(pk=int(user_id)).values_list("email", flat=True).first() or ""
