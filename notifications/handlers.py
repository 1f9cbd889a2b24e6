from typing import Any

from accounts.events import UserRegistered, UserRegisteredV1
from events import Event, subscribe
from notifications.selectors import customer_email
from notifications.services import notification_send, rain_alert_notify
from orders.events import OrderCancelled, OrderCancelledV1, OrderConfirmed, OrderConfirmedV1
from payroll.events import SalaryCredited, SalaryCreditedV1
from shipping.events import OrderShipped, OrderShippedV1
from weather.events import RainAlert, RainAlertV1


@subscribe(UserRegistered, version="1.0", service="notifications")
def send_welcome_email(event: Event[UserRegisteredV1]) -> None:
    user = event.data
    notification_send(
        recipient=user.email,
        kind="welcome",
        subject="Welcome aboard",
        body=f"Hello {user.username}, your account is ready.",
        event_id=event.id,
    )


@subscribe(SalaryCredited, version="1.0", service="notifications")
def send_salary_credited_notice(event: Event[SalaryCreditedV1]) -> None:
    salary = event.data
    notification_send(
        recipient=salary.email,
        kind="salary-credited",
        subject=f"Your salary for {salary.period} has been credited",
        body=f"Hello {salary.username}, {salary.amount} {salary.currency} for {salary.period} has been credited to your account.",
        event_id=event.id,
    )


# --- Orders: the customer hears when an order is confirmed, cancelled (with the reason) and shipped.


def _tell_customer(event: Event[Any], user_id: str, kind: str, subject: str, body: str) -> None:
    notification_send(recipient=customer_email(user_id=user_id), kind=kind, subject=subject, body=body, event_id=event.id)


@subscribe(OrderConfirmed, version="1.0", service="notifications")
def tell_order_confirmed(event: Event[OrderConfirmedV1]) -> None:
    order = event.data
    _tell_customer(
        event,
        order.userId,
        "order-confirmed",
        f"Order {order.orderId} confirmed",
        f"Your order {order.orderId} is paid and confirmed ({order.total} {order.currency}).",
    )


@subscribe(OrderCancelled, version="1.0", service="notifications")
def tell_order_cancelled(event: Event[OrderCancelledV1]) -> None:
    order = event.data
    _tell_customer(
        event,
        order.userId,
        "order-cancelled",
        f"Order {order.orderId} cancelled",
        f"Your order {order.orderId} was cancelled: {order.reason}.",
    )


@subscribe(OrderShipped, version="1.0", service="notifications")
def tell_order_shipped(event: Event[OrderShippedV1]) -> None:
    order = event.data
    _tell_customer(
        event,
        order.userId,
        "order-shipped",
        f"Order {order.orderId} shipped",
        f"Your order {order.orderId} is on its way; tracking number {order.trackingNumber}.",
    )


@subscribe(RainAlert, version="1.0", service="notifications")
def send_rain_alert(event: Event[RainAlertV1]) -> None:
    alert = event.data
    rain_alert_notify(
        region=alert.region,
        region_name=alert.regionName,
        rain_mm_per_hour=alert.rainMmPerHour,
        observed_at=alert.observedAt.isoformat(),
        event_id=event.id,
    )
