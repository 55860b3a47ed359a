"""Reading and writing the items CSV."""

import csv

from inv.models import Item


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
