"""The stock item record."""

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
