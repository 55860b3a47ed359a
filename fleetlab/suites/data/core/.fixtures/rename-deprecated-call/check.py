"""No module uses get_conn any more, db no longer defines it, and the reports still work."""

import warnings
from pathlib import Path

warnings.simplefilter("error")

for path in sorted(Path().glob("*.py")):
    assert "get_conn" not in path.read_text(encoding="utf-8"), f"{path} still mentions get_conn"

import db  # noqa: E402
import reports  # noqa: E402

assert not hasattr(db, "get_conn"), "db.get_conn still exists"
got = reports.daily()
assert got == "reports: 3 users, 2 open orders", f"reports.daily() returned {got!r}"
