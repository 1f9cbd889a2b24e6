from django.db.models import QuerySet

from orders.models import OrderSummary, Product


def order_list(*, user: object) -> QuerySet[OrderSummary]:
    orders = OrderSummary.objects.select_related("customer")
    if getattr(user, "is_staff", False):
        return orders
    return orders.filter(customer_id=getattr(user, "pk", None))


def product_list() -> QuerySet[Product]:
    return Product.objects.all()
