"""Each benchmark runs once at a tiny size, on SQLite and on PostgreSQL side by side, so the
code keeps working (not a timing test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fleetlab.bench.__main__ import _markdown, _parse
from fleetlab.store.postgres.cluster import ClusterUnavailable, find_bindir
from tests.conftest import require_dependency

KEYS = {"ratio_vs_langgraph", "fraction_of_commit_limit", "fraction_of_littles_law",
        "loop_lag_p99_ms", "peak_rss_mb", "week_metrics_s", "trend_52w_s"}  # fmt: skip
PG_KEYS = {"pg_ratio_vs_langgraph", "pg_fleetlab_turns_per_s", "pg_langgraph_turns_per_s",
           "pg_fraction_of_commit_limit", "pg_fraction_of_littles_law", "pg_loop_lag_p99_ms",
           "pg_week_metrics_s", "pg_trend_52w_s"}  # fmt: skip


def _postgres_present() -> bool:
    try:
        find_bindir()
    except ClusterUnavailable:
        return False
    return True


@pytest.mark.slow
def test_bench_all_quick(tmp_path: Path) -> None:
    require_dependency(_postgres_present(), "benchmark's PostgreSQL side: no initdb found")
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "-m", "fleetlab.bench", "all", "--quick", "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "latest.json").read_text())
    assert set(data) >= KEYS | PG_KEYS, (KEYS | PG_KEYS) - set(data)
    assert data["meta"]["quick"] is True
    assert data["meta"]["backends"] == ["sqlite", "postgresql"]
    runs = data["parts"]["orchestration"]["runs"]
    assert runs["fleetlab"][0]["completed"] == 20  # every task really ran to completion
    assert runs["pg_fleetlab"][0]["completed"] == 20
    assert runs["pg_langgraph"][0]["turns"] == 20 * 6
    hosts = data["parts"]["concurrency"]["pg_runs"][0]
    assert hosts["hosts"] == 3
    assert sum(hosts["shares"]) == 30
    assert hosts["turns"] == 30 * 4
    assert len(hosts["loop_lag_p99_ms"]) == 3
    assert sum(hosts["host_turns"]) == 30 * 4  # all three processes shared the agents' turns
    reports = data["parts"]["reports"]
    assert reports["tasks"] >= 2000
    assert reports["pg_tasks"] == reports["tasks"]
    # COPY loaded the same rows, in the same order; the digest reads the same week from both.
    assert reports["same_rows_on_both"] is True
    assert reports["same_week_metrics_on_both"] is True
    assert reports["same_trend_on_both"] is True
    assert data["parts"]["experiments"]["trials"] > 0
    assert 0 < data["parts"]["experiments"]["fraction_outside_model"] <= 1
    table = (out / "latest.md").read_text()
    assert "ratio_vs_langgraph" in table
    assert "pg_ratio_vs_langgraph" in table
    assert "SQLite and PostgreSQL side by side" in table
    assert "quick sizes" in table


def test_bench_db_must_be_a_server_url(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parse(["orchestration", "--db", "fleet.db"])
    assert exc.value.code == 2
    assert "--db takes a postgresql:// URL" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parse(["--backends", "sqlite,oracle"])
    args = _parse(["orchestration", "--backends", "sqlite", "--db", "postgresql://u:pw@h/db"])
    assert args.backends == ["sqlite", "postgresql"]  # --db brings the PostgreSQL side in


def test_bench_markdown_with_one_backend() -> None:
    results = {"orchestration": {"fleetlab_turns_per_s": 900.0, "ratio_vs_langgraph": 9.5}}
    meta = {"at": "now", "machine": "x", "cpus": 2, "quick": True, "backends": ["sqlite"],
            "postgresql": "not run"}  # fmt: skip
    table = _markdown({"ratio_vs_langgraph": 9.5}, results, meta)
    assert "| 9.5 | >= 10 | NO |" in table
    assert "| orchestration | fleetlab turns/s | 900 | - |" in table
