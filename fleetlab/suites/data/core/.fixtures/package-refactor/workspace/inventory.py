"""Inventory tool: load items, restock, report low stock (everything in one file)."""

import csv
import sys
from dataclasses import dataclass


@dataclass
class Item:
    sku: str
    name: str
    qty: int
    min_qty: int

    @property
    def low(self):
        return self.qty < self.min_qty


def load_items(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [
            Item(row["sku"], row["name"], int(row["qty"]), int(row["min_qty"]))
            for row in csv.DictReader(f)
        ]


def save_items(path, items):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sku", "name", "qty", "min_qty"])
        for item in items:
            writer.writerow([item.sku, item.name, item.qty, item.min_qty])


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


def main(argv):
    """inventory.py FILE report | inventory.py FILE restock SKU AMOUNT"""
    if len(argv) < 2:
        print("usage: inventory.py FILE report|restock SKU AMOUNT", file=sys.stderr)
        return 2
    path, command = argv[0], argv[1]
    items = load_items(path)
    if command == "report":
        for item in low_stock(items):
            print(f"{item.sku} {item.name}: {item.qty}/{item.min_qty}")
        return 0
    if command == "restock" and len(argv) == 4:
        item = restock(items, argv[2], int(argv[3]))
        save_items(path, items)
        print(f"{item.sku} now {item.qty}")
        return 0
    print(f"unknown command: {' '.join(argv[1:])}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
