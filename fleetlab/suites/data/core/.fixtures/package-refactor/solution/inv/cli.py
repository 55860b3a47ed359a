"""python -m inv.cli FILE report | python -m inv.cli FILE restock SKU AMOUNT"""

import sys

from inv.service import low_stock, restock
from inv.storage import load_items, save_items


def main(argv):
    if len(argv) < 2:
        print("usage: python -m inv.cli FILE report|restock SKU AMOUNT", file=sys.stderr)
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
