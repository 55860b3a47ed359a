"""Every module logs through logkit with the same messages and levels; log.py is gone."""

import contextlib
import io
import logging
from pathlib import Path

assert not Path("log.py").exists(), "log.py still exists"
for path in sorted(Path().glob("*.py")):
    assert "log_msg" not in path.read_text(encoding="utf-8"), f"{path} still uses log_msg"
contributing = Path("CONTRIBUTING.md").read_text(encoding="utf-8")
assert "log_msg" not in contributing, "CONTRIBUTING.md still recommends log_msg"
assert "logkit.get_logger(__name__)" in contributing, "CONTRIBUTING.md does not show logkit"


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append((record.name, record.levelname, record.getMessage()))


collect = Collect()
root = logging.getLogger("app")
root.addHandler(collect)
root.setLevel(logging.DEBUG)

import main  # noqa: E402

stderr = io.StringIO()
with contextlib.redirect_stderr(stderr):
    result = main.main()
assert result == "150 label-A-17 0", f"main.main() returned {result!r}"
assert "[INFO]" not in stderr.getvalue(), "something still prints legacy log lines"

want = [
    ("app.main", "INFO", "nightly run started"),
    ("app.billing", "INFO", "charging 3 invoices"),
    ("app.billing", "ERROR", "1 invoices have negative amounts"),
    ("app.users", "INFO", "deactivating user 7"),
    ("app.users", "INFO", "deactivating user 9"),
    ("app.shipping", "WARNING", "order A-17 is heavy (42 kg)"),
    ("app.shipping", "INFO", "shipping order A-17"),
    ("app.search", "WARNING", "no results for 'kiwi'"),
    ("app.main", "INFO", "nightly run finished"),
]
for number, (got, expected) in enumerate(zip(collect.records, want, strict=False), 1):
    assert got == expected, f"log record {number} is {got}, expected {expected}"
assert len(collect.records) == len(want), f"{len(collect.records)} log records, expected {len(want)}"
