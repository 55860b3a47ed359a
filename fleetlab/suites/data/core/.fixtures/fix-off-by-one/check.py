"""page() is 1-based and page_count() counts a last partial page."""

from paginate import page, page_count

items = list(range(25))
cases = [
    (page(items, 1), list(range(10)), "page(items, 1)"),
    (page(items, 3), [20, 21, 22, 23, 24], "page(items, 3)"),
    (page(items, 2, size=5), [5, 6, 7, 8, 9], "page(items, 2, size=5)"),
    (page(items, 4), [], "page(items, 4)"),
    (page_count(items), 3, "page_count(items)"),
    (page_count(items, size=5), 5, "page_count(items, size=5)"),
    (page_count([]), 0, "page_count([])"),
    (page_count(list(range(10))), 1, "page_count(10 items)"),
]
for got, want, call in cases:
    assert got == want, f"{call} returned {got!r}, expected {want!r}"
