"""monthly.json and top_customers.json match totals recomputed from the pristine monthly CSVs.

The inputs are read from the suite's own copy (FLEETLAB_SUITE_DIR), so editing data/ in the
workspace cannot make wrong reports pass; data/ must also be left unchanged.
"""

import csv
import json
import os
from collections import defaultdict
from pathlib import Path

PRISTINE = Path(os.environ["FLEETLAB_SUITE_DIR"]) / ".fixtures/half-year-report/workspace/data"
MONTHS = [f"2025-{m:02d}" for m in range(1, 7)]


def amount(raw):
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


monthly = {}
customers = defaultdict(float)
for month in MONTHS:
    source = PRISTINE / f"{month}.csv"
    copy = Path("data") / f"{month}.csv"
    assert copy.is_file(), f"{copy} is missing"
    assert copy.read_text(encoding="utf-8") == source.read_text(encoding="utf-8"), f"{copy} was changed"
    totals = {"north": 0.0, "south": 0.0}
    with source.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            value = amount(row["amount"].strip())
            if value is not None:
                totals[row["region"]] += value
                customers[row["region"], row["customer"]] += value
    monthly[month] = {**totals, "total": totals["north"] + totals["south"]}


def load(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AssertionError(f"{path} is missing") from None
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{path} is not valid JSON: {exc}") from None


got = load("reports/monthly.json")
assert isinstance(got, dict) and sorted(got) == MONTHS, f"reports/monthly.json keys: {sorted(got)}"
for month, want in monthly.items():
    entry = got[month]
    assert isinstance(entry, dict) and sorted(entry) == sorted(want), f"{month}: keys {entry}"
    for key, value in want.items():
        have = entry[key]
        assert isinstance(have, int | float) and abs(have - value) <= 0.01, (
            f"reports/monthly.json {month}.{key} is {have!r}, expected {value:.2f}"
        )

got = load("reports/top_customers.json")
assert isinstance(got, dict) and sorted(got) == ["north", "south"], "top_customers.json regions"
for region in ("north", "south"):
    ranked = sorted(
        ((c, v) for (r, c), v in customers.items() if r == region), key=lambda cv: (-cv[1], cv[0])
    )[:3]
    have = got[region]
    assert isinstance(have, list) and len(have) == 3, f"{region}: expected a list of 3 customers"
    for place, ((customer, value), entry) in enumerate(zip(ranked, have, strict=True), 1):
        assert entry.get("customer") == customer, (
            f"{region} #{place} is {entry.get('customer')!r}, expected {customer!r}"
        )
        assert abs(float(entry.get("amount", -1)) - value) <= 0.01, (
            f"{region} #{place} amount is {entry.get('amount')!r}, expected {value:.2f}"
        )
