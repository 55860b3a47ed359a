"""The storage seam holds: SQL and database drivers live only in ``fleetlab/store/``.

Scans the package's source the way the issue's check does (``grep -rn "sqlite3\\|execute("``),
plus imports of the PostgreSQL driver, so a statement slipped into another module fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "fleetlab"
STORE = PACKAGE / "store"
FORBIDDEN = re.compile(r"sqlite3|execute\(|psycopg")


def _offenders() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if STORE in path.parents:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if FORBIDDEN.search(line):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    return found


def test_no_sql_driver_or_execute_outside_the_store() -> None:
    assert _offenders() == []


def test_the_scan_sees_a_planted_statement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan is not vacuous: a module outside the store that runs SQL is reported."""
    fake = tmp_path / "fleetlab"
    (fake / "store").mkdir(parents=True)
    (fake / "store" / "ok.py").write_text("conn.execute('SELECT 1')\n")
    (fake / "status.py").write_text("import sqlite3\nrows = conn.execute('SELECT 1')\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", fake)
    monkeypatch.setattr(f"{__name__}.STORE", fake / "store")
    assert _offenders() == [
        "fleetlab/status.py:1: import sqlite3",
        "fleetlab/status.py:2: rows = conn.execute('SELECT 1')",
    ]
