"""Stock operations on lists of items."""


def restock(items, sku, amount):
    """Add `amount` to the item `sku`; unknown SKUs raise KeyError."""
    if amount <= 0:
        raise ValueError("amount must be positive")
    for item in items:
        if item.sku == sku:
            item.qty += amount
            return item
    raise KeyError(sku)


def low_stock(items):
    """The items below their minimum, lowest ratio first."""
    return sorted((i for i in items if i.low), key=lambda i: (i.qty / i.min_qty, i.sku))
