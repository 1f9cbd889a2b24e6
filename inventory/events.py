from events import EventSchema, event_type


class StockLine(EventSchema):
    productId: str
    quantity: int


class StockReservedV1(EventSchema):
    orderId: str
    items: list[StockLine]


class OutOfStockV1(EventSchema):
    orderId: str
    productIds: list[str]


class StockReleasedV1(EventSchema):
    orderId: str
    items: list[StockLine]


StockReserved = event_type("inventory", "StockReserved", versions={"1.0": StockReservedV1})
OutOfStock = event_type("inventory", "OutOfStock", versions={"1.0": OutOfStockV1})
StockReleased = event_type("inventory", "StockReleased", versions={"1.0": StockReleasedV1})
