"""The nightly job."""

import inventory


def nightly(path):
    """The nightly low-stock report, as text."""
    items = inventory.load_items(path)
    lines = [f"{i.sku} {i.name}: {i.qty}/{i.min_qty}" for i in inventory.low_stock(items)]
    return "\n".join(lines) or "all stock levels fine"


if __name__ == "__main__":
    print(nightly("data/items.csv"))
