"""Inventory: stock items, their storage and the operations on them."""

from inv.models import Item
from inv.service import low_stock, restock
from inv.storage import load_items, save_items

__all__ = ["Item", "load_items", "low_stock", "restock", "save_items"]
