"""Split lists into pages."""


def page(items, number, size=10):
    """Return page `number` (1-based) of `items`, `size` items per page."""
    start = (number - 1) * size
    return items[start:start + size]


def page_count(items, size=10):
    """How many pages `items` fills, counting a last partial page."""
    return (len(items) + size - 1) // size
