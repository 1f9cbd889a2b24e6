"""Test data for the commerce services: a catalogue with stock, customers."""

from __future__ import annotations

from decimal import Decimal

from accounts.services import user_register
from inventory.models import Stock
from orders.models import Product

ADDRESS = {"city": "Hyderabad", "pincode": "500001"}


def catalogue(stock: dict[str, int] | None = None) -> None:
    """P001 at 12.50 EUR, P002 at 3.20 EUR, P003 at 99.00 EUR; stock as given (default 100 each)."""
    prices = {"P001": Decimal("12.50"), "P002": Decimal("3.20"), "P003": Decimal("99.00")}
    for sku, price in prices.items():
        Product.objects.update_or_create(sku=sku, defaults={"name": f"Product {sku}", "price": price, "currency": "EUR"})
        Stock.objects.update_or_create(sku=sku, defaults={"available": (stock or {}).get(sku, 100)})


def customer(username: str = "ada", password: str | None = "pw-correct-horse-42") -> object:
    return user_register(username=username, email=f"{username}@example.com", password=password)
