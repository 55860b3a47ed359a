"""calc_avg is now mean, everywhere, and report.summary still works."""

from pathlib import Path

import report
import stats

for name in ("stats.py", "report.py"):
    assert "calc_avg" not in Path(name).read_text(encoding="utf-8"), f"{name} mentions calc_avg"
assert hasattr(stats, "mean"), "stats.py has no function mean"
assert stats.mean([1, 2, 6]) == 3, "stats.mean([1, 2, 6]) should be 3"
got = report.summary([1, 2, 3])
assert got == "avg=2.0 spread=2", f"report.summary([1, 2, 3]) returned {got!r}"
