"""Each benchmark runs once at a tiny size, so the code keeps working (not a timing test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

KEYS = {"ratio_vs_langgraph", "fraction_of_commit_limit", "fraction_of_littles_law",
        "loop_lag_p99_ms", "peak_rss_mb", "week_metrics_s", "trend_52w_s"}  # fmt: skip


@pytest.mark.slow
def test_bench_all_quick(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "-m", "fleetlab.bench", "all", "--quick", "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "latest.json").read_text())
    assert set(data) >= KEYS, KEYS - set(data)
    assert data["meta"]["quick"] is True
    runs = data["parts"]["orchestration"]["runs"]
    assert runs["fleetlab"][0]["completed"] == 20  # every task really ran to completion
    assert data["parts"]["reports"]["tasks"] >= 2000
    assert data["parts"]["experiments"]["trials"] > 0
    assert 0 < data["parts"]["experiments"]["fraction_outside_model"] <= 1
    table = (out / "latest.md").read_text()
    assert "ratio_vs_langgraph" in table
    assert "quick sizes" in table
