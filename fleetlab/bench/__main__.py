"""``python -m fleetlab.bench [all|orchestration|concurrency|reports|experiments] [--quick]``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from fleetlab.clock import SystemClock

PARTS = ("orchestration", "concurrency", "reports", "experiments")
console = Console()


def _worker(name: str, **params: Any) -> dict[str, Any]:
    """Run one workload in a fresh process (its own RSS, its own page cache writes)."""
    proc = subprocess.run(
        [sys.executable, "-m", "fleetlab.bench.worker", name, json.dumps(params)],
        capture_output=True, text=True, check=False, cwd=Path.cwd(),
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker {name} failed:\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def orchestration(quick: bool, repeats: int) -> dict[str, Any]:
    n = 20 if quick else 2000
    concurrency = 16
    runs: dict[str, list[dict[str, Any]]] = {"fleetlab": [], "langgraph": [], "raw": []}
    for i in range(repeats):  # interleaved, so drift on a shared machine hits all three
        console.print(f"  orchestration run {i + 1}/{repeats} (N={n})")
        runs["raw"].append(_worker("raw", n=200 if quick else 3000))
        runs["fleetlab"].append(_worker("fleetlab", n=n, concurrency=concurrency))
        runs["langgraph"].append(_worker("langgraph", n=n, concurrency=concurrency))
    ours = _median(runs["fleetlab"], "turns_per_s")
    theirs = _median(runs["langgraph"], "turns_per_s")
    raw = _median(runs["raw"], "commits_per_s")
    return {
        "n_tasks": n, "turns_per_task": 6, "concurrency": concurrency, "repeats": repeats,
        "fleetlab_turns_per_s": ours, "langgraph_turns_per_s": theirs,
        "raw_commits_per_s": raw, "ratio_vs_langgraph": ours / theirs,
        "fraction_of_commit_limit": ours / raw,
        "fleetlab_peak_rss_mb": _median(runs["fleetlab"], "peak_rss_mb"),
        "langgraph_peak_rss_mb": _median(runs["langgraph"], "peak_rss_mb"),
        "fleetlab_bytes_per_turn": _median(runs["fleetlab"], "bytes_per_turn"),
        "langgraph_bytes_per_turn": _median(runs["langgraph"], "bytes_per_turn"),
        "fleetlab_settings": runs["fleetlab"][0]["settings"],
        "langgraph_settings": runs["langgraph"][0]["settings"],
        "runs": runs,
    }  # fmt: skip


def concurrency(quick: bool, repeats: int) -> dict[str, Any]:
    params = ({"agents": 20, "turns": 3, "low": 0.01, "high": 0.05} if quick
              else {"agents": 1000, "turns": 10, "low": 0.2, "high": 2.0})  # fmt: skip
    runs = []
    for i in range(repeats):
        console.print(f"  concurrency run {i + 1}/{repeats} ({params['agents']} agents)")
        runs.append(_worker("concurrency", **params))
    return {
        **params, "repeats": repeats,
        "turns_per_s": _median(runs, "turns_per_s"),
        "steady_turns_per_s": _median(runs, "steady_turns_per_s"),
        "littles_law_turns_per_s": _median(runs, "littles_law_turns_per_s"),
        "fraction_of_littles_law": _median(runs, "fraction_of_littles_law"),
        "fraction_of_littles_law_whole_run": _median(runs, "fraction_of_littles_law_whole_run"),
        "loop_lag_p50_ms": _median(runs, "loop_lag_p50_ms"),
        "loop_lag_p99_ms": _median(runs, "loop_lag_p99_ms"),
        "peak_rss_mb": _median(runs, "peak_rss_mb"),
        "runs": runs,
    }  # fmt: skip


def reports(quick: bool, repeats: int) -> dict[str, Any]:
    tasks = 2_000 if quick else 1_000_000
    db = Path("reports/bench") / f"year-{tasks}.db"
    console.print(f"  reports on {tasks:,} tasks ({db}; generated once, then reused)")
    return _worker("reports", tasks=tasks, db=str(db), repeats=repeats, digest=not quick)


def experiments(quick: bool, repeats: int) -> dict[str, Any]:
    runs = []
    for i in range(repeats):
        console.print(f"  experiments run {i + 1}/{repeats} (decomposition_ab on sim:instant)")
        runs.append(_worker("experiments", quick=quick))
    return {
        "trials": runs[0]["trials"],
        "trials_per_s": _median(runs, "trials_per_s"),
        "fraction_outside_model": _median(runs, "fraction_outside_model"),
        "runs": runs,
    }


RUNNERS: dict[str, Callable[[bool, int], dict[str, Any]]] = {
    "orchestration": orchestration,
    "concurrency": concurrency,
    "reports": reports,
    "experiments": experiments,
}

GOALS = [
    ("ratio_vs_langgraph", ">=", 10.0, "fleetlab turns/s over LangGraph's, equal durability"),
    ("fraction_of_commit_limit", ">=", 0.5, "fleetlab turns/s over raw SQLite commits/s"),
    ("fraction_of_littles_law", ">=", 0.95, "steady-state over Little's-law throughput"),
    ("loop_lag_p99_ms", "<", 50.0, "event-loop lag p99 with 1,000 agents"),
    ("peak_rss_mb", "<", 1024.0, "peak RSS with 1,000 agents (MB)"),
    ("week_metrics_s", "<", 5.0, "one week's metrics on a year of data (s)"),
    ("trend_52w_s", "<", 30.0, "52-week trend on a year of data (s)"),
]


def _flatten(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    top: dict[str, Any] = {}
    for part in results.values():
        for key, value in part.items():
            if key != "runs" and not isinstance(value, dict | list):
                top.setdefault(key, value)
    if "concurrency" in results:
        top["peak_rss_mb"] = results["concurrency"]["peak_rss_mb"]
    return top


def _markdown(top: dict[str, Any], results: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# fleetlab benchmarks", "",
        f"Run at {meta['at']} on {meta['machine']} ({meta['cpus']} CPUs), "
        f"{'quick sizes (a smoke run, not a measurement)' if meta['quick'] else 'full sizes'}; "
        "medians of the runs listed in latest.json.", "",
        "| figure | value | goal | met |", "|---|---|---|---|",
    ]  # fmt: skip
    for key, op, goal, label in GOALS:
        if key not in top:
            continue
        value = float(top[key])
        met = value >= goal if op == ">=" else value < goal
        lines.append(
            f"| {label} (`{key}`) | {value:,.3g} | {op} {goal:g} | {'yes' if met else 'NO'} |"
        )
    lines += ["", "## All figures", "", "| part | figure | value |", "|---|---|---|"]
    for part, figures in results.items():
        for key, value in figures.items():
            if key == "runs":
                continue
            shown = f"{value:,.4g}" if isinstance(value, float) else str(value)
            lines.append(f"| {part} | {key} | {shown} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleetlab.bench", description=__doc__)
    parser.add_argument("part", nargs="?", default="all", choices=("all", *PARTS))
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the code runs")
    parser.add_argument("--repeats", type=int, default=None, help="runs per workload (median)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench"), help="output folder")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    parts = [p for p in PARTS if args.part in ("all", p) and p in RUNNERS]
    results: dict[str, dict[str, Any]] = {}
    for part in parts:
        console.print(f"[bold]{part}[/]")
        results[part] = RUNNERS[part](args.quick, repeats)
    previous = args.out / "latest.json"
    if args.part != "all" and previous.exists():  # one part re-run: keep the others' figures
        kept = json.loads(previous.read_text()).get("parts", {})
        results = {**{k: v for k, v in kept.items() if k in PARTS}, **results}
        results = {k: results[k] for k in PARTS if k in results}
    top = _flatten(results)
    meta = {
        "at": SystemClock().now().isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "python": platform.python_version(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(
        json.dumps({**top, "meta": meta, "parts": results}, indent=2)
    )
    (args.out / "latest.md").write_text(_markdown(top, results, meta))
    console.print(_markdown(top, results, meta))
    console.print(f"wrote {args.out / 'latest.md'} and {args.out / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
