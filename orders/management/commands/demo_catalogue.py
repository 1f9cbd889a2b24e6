from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inventory.models import Stock
from orders.models import Product

CATALOGUE = [
    ("P001", "Espresso beans, 1 kg", Decimal("24.90"), 50),
    ("P002", "Ceramic cup", Decimal("8.50"), 200),
    ("P003", "Hand grinder", Decimal("59.00"), 10),
    ("P004", "Milk jug", Decimal("14.00"), 3),
    ("P005", "Limited edition kettle", Decimal("129.00"), 1),
]


class Command(BaseCommand):
    help = "Add a small product catalogue with stock to a development instance (kept if already there)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_catalogue is for development instances (DEBUG=True) only")
        for sku, name, price, units in CATALOGUE:
            Product.objects.get_or_create(sku=sku, defaults={"name": name, "price": price, "currency": "EUR"})
            Stock.objects.get_or_create(sku=sku, defaults={"available": units})
        self.stdout.write(
            "  Orders: Orders > Orders > Add order (products P001-P005; P005 has one unit left), then watch it"
            "\n  go through payments, inventory and shipping in its event history.\n"
        )
