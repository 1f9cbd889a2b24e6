"""demo_catalogue: a catalogue with stock for a development instance, kept as it is when run again."""

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from inventory.models import Stock
from orders.models import Product

pytestmark = pytest.mark.django_db


def test_demo_catalogue_adds_products_with_stock_once(settings: Any) -> None:
    settings.DEBUG = True
    call_command("demo_catalogue", stdout=StringIO())
    assert Product.objects.count() == 5 and Stock.objects.get(sku="P005").available == 1
    Stock.objects.filter(sku="P005").update(available=0)
    call_command("demo_catalogue", stdout=StringIO())
    assert Product.objects.count() == 5 and Stock.objects.get(sku="P005").available == 0


def test_demo_catalogue_is_for_development_only(settings: Any) -> None:
    settings.DEBUG = False
    with pytest.raises(CommandError, match="development instances"):
        call_command("demo_catalogue")
