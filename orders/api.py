from datetime import datetime
from decimal import Decimal

from django.http import HttpRequest
from ninja import Field, Path, Router, Schema, Status

from orders import selectors, store
from orders.checkout import CheckoutUnavailable, PaymentDeclined, checkout_sync
from orders.domain import CannotCancel, Order
from orders.events import OrderItem, ShippingAddress
from orders.services import OrderNotFound, order_cancel, order_place
from project import api_auth
from project.schemas import BODY_ERRORS, ErrorOut, ValidationErrorOut

ORDER_ID = Path(..., min_length=1, max_length=50, pattern=r"^[A-Za-z0-9-]+$")

router = Router(tags=["orders"])
products_router = Router(tags=["orders"])
checkout_router = Router(tags=["orders"])


class ItemIn(Schema):
    productId: str = Field(min_length=1, max_length=50)
    quantity: int = Field(ge=1, le=1000)


class AddressIn(Schema):
    city: str = Field(min_length=1, max_length=200)
    pincode: str = Field(min_length=1, max_length=20)


class OrderIn(Schema):
    items: list[ItemIn] = Field(min_length=1, max_length=100)
    shippingAddress: AddressIn


class OrderOut(Schema):
    orderId: str
    status: str
    userId: str
    items: list[OrderItem]
    shippingAddress: ShippingAddress
    total: Decimal
    currency: str
    payment: str
    stock: str
    shipmentId: str
    reason: str
    version: int
    placedAt: datetime | None
    changedAt: datetime | None

    @staticmethod
    def of(order: Order) -> "OrderOut":
        return OrderOut(
            orderId=order.id,
            status=order.status,
            userId=order.user_id,
            items=[OrderItem(productId=line.product_id, quantity=line.quantity) for line in order.items],
            shippingAddress=ShippingAddress(**order.shipping_address),
            total=order.total,
            currency=order.currency,
            payment=order.payment,
            stock=order.stock,
            shipmentId=order.shipment_id,
            reason=order.reason,
            version=order.version,
            placedAt=order.placed_at,
            changedAt=order.changed_at,
        )


class OrderSummaryOut(Schema):
    orderId: str = Field(alias="order_id")
    status: str
    customerId: int | None = Field(alias="customer_id")
    total: Decimal
    currency: str
    itemCount: int = Field(alias="item_count")
    version: int
    lastChangeAt: datetime = Field(alias="last_change_at")


class CancelIn(Schema):
    reason: str = Field(default="cancelled by the customer", max_length=500)


class ProductOut(Schema):
    sku: str
    name: str
    price: Decimal
    currency: str


def _order(order_id: str) -> Order:
    order = store.load(order_id)
    if not order.status:
        raise OrderNotFound(order_id)
    return order


@router.get(
    "/{order_id}",
    response={200: OrderOut, **api_auth.AUTH_ERRORS, 404: ErrorOut, 422: ValidationErrorOut},
    auth=[*api_auth.SERVICE, *api_auth.CUSTOMER],
    summary="An order, folded from its events",
)
def order_detail(request: HttpRequest, order_id: str = ORDER_ID) -> Status:
    """Read by inventory (with its service key) when OrderPlaced 1.0 tells it an order exists (event
    notification plus call back), and by a customer for their own orders."""
    try:
        order = _order(order_id)
        if request.auth != api_auth.SERVICE_CALLER and not request.auth.is_staff and order.user_id != str(request.auth.pk):
            raise OrderNotFound(order_id)
        return Status(200, OrderOut.of(order))
    except OrderNotFound as exc:
        return Status(404, {"detail": str(exc)})


@router.get("", response={200: list[OrderSummaryOut], **api_auth.AUTH_ERRORS}, auth=api_auth.CUSTOMER, include_in_schema=False)
@router.get("/", response={200: list[OrderSummaryOut], **api_auth.AUTH_ERRORS}, auth=api_auth.CUSTOMER, summary="Your orders")
def order_list(request: HttpRequest) -> list[object]:
    """From the read model; staff see every order."""
    return list(selectors.order_list(user=request.auth)[:200])


@router.post("", response={201: OrderOut, **api_auth.AUTH_ERRORS, **BODY_ERRORS}, auth=api_auth.CUSTOMER, include_in_schema=False)
@router.post(
    "/", response={201: OrderOut, **api_auth.AUTH_ERRORS, **BODY_ERRORS}, auth=api_auth.CUSTOMER, summary="Place an order"
)
def order_place_view(request: HttpRequest, payload: OrderIn) -> Status:
    """Event-driven checkout: answers at once; payment, stock, confirmation and shipping follow as events."""
    order = order_place(
        customer=request.auth,
        items=[(item.productId, item.quantity) for item in payload.items],
        shipping_address=payload.shippingAddress.model_dump(),
    )
    return Status(201, OrderOut.of(order))


@router.post(
    "/{order_id}/cancel",
    response={200: OrderOut, **api_auth.AUTH_ERRORS, 404: ErrorOut, 409: ErrorOut, **BODY_ERRORS},
    auth=api_auth.CUSTOMER,
    summary="Cancel an order",
)
def order_cancel_view(request: HttpRequest, payload: CancelIn, order_id: str = ORDER_ID) -> Status:
    try:
        order = _order(order_id)
        if not request.auth.is_staff and order.user_id != str(request.auth.pk):
            raise OrderNotFound(order_id)
        return Status(200, OrderOut.of(order_cancel(order_id=order_id, reason=payload.reason)))
    except OrderNotFound as exc:
        return Status(404, {"detail": str(exc)})
    except CannotCancel as exc:
        return Status(409, {"detail": str(exc)})


@products_router.get("/", response=list[ProductOut], auth=None, summary="The product catalogue")
def product_list(request: HttpRequest) -> list[object]:
    return list(selectors.product_list())


class CheckoutOut(OrderOut):
    notified: bool


@checkout_router.post(
    "/sync",
    response={201: CheckoutOut, 402: ErrorOut, 503: ErrorOut, **api_auth.AUTH_ERRORS, **BODY_ERRORS},
    auth=api_auth.CUSTOMER,
    summary="Request-driven checkout",
)
def checkout_sync_view(request: HttpRequest, payload: OrderIn) -> Status:
    """Charges over HTTP and waits, then notifies over HTTP; the order exists only once paid.

    503 when payments is unreachable (within the connect timeout) or slower than the read timeout:
    then no order, no event and no charge remain. 402 when the payment is declined.
    """
    try:
        result = checkout_sync(
            customer=request.auth,
            items=[(item.productId, item.quantity) for item in payload.items],
            shipping_address=payload.shippingAddress.model_dump(),
        )
    except CheckoutUnavailable as exc:
        return Status(503, {"detail": str(exc)})
    except PaymentDeclined as exc:
        return Status(402, {"detail": str(exc)})
    return Status(201, CheckoutOut(**OrderOut.of(result.order).model_dump(), notified=result.notified))
