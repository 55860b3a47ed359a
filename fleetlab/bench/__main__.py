"""``python -m fleetlab.bench [all|orchestration|concurrency|reports|experiments] [--quick]
[--backends sqlite,postgresql] [--db postgresql://...]``.

Every part runs on each backend asked for, side by side in one run: SQLite on new files in
the working folder, PostgreSQL on a throwaway cluster this command starts (``initdb`` into
a temporary folder, reached over TCP on 127.0.0.1, ``fsync`` on) or, with ``--db``, on the
server that URL reaches (its role needs CREATEDB: each run makes a database of its own
there and drops it afterwards; the year database is kept for the next run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from fleetlab.clock import SystemClock

PARTS = ("orchestration", "concurrency", "reports", "experiments", "workers")
BACKENDS = ("sqlite", "postgresql")
console = Console()


@dataclass(frozen=True)
class Plan:
    """What one invocation measures: sizes, repeats and the backends."""

    quick: bool
    repeats: int
    sqlite: bool
    server: str | None  # the PostgreSQL server's URL; None: no PostgreSQL side
    year_tasks: int | None = None  # the year db's size (default: 2,000 quick, 1M full)


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


def orchestration(plan: Plan) -> dict[str, Any]:
    n = 20 if plan.quick else 2000
    raw_n = 200 if plan.quick else 3000
    concurrency = 16
    names = [*(("raw", "fleetlab", "langgraph") if plan.sqlite else ()),
             *(("pg_raw", "pg_fleetlab", "pg_langgraph") if plan.server else ())]  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for i in range(plan.repeats):  # interleaved, so drift on a shared machine hits them all
        console.print(f"  orchestration run {i + 1}/{plan.repeats} (N={n})")
        if plan.sqlite:
            runs["raw"].append(_worker("raw", n=raw_n))
            runs["fleetlab"].append(_worker("fleetlab", n=n, concurrency=concurrency))
            runs["langgraph"].append(_worker("langgraph", n=n, concurrency=concurrency))
        if plan.server:
            server = plan.server
            runs["pg_raw"].append(_worker("raw", n=raw_n, server=server))
            runs["pg_fleetlab"].append(
                _worker("fleetlab", n=n, concurrency=concurrency, server=server)
            )
            runs["pg_langgraph"].append(
                _worker("langgraph", n=n, concurrency=concurrency, server=server)
            )
    out: dict[str, Any] = {"n_tasks": n, "turns_per_task": 6, "concurrency": concurrency,
                           "repeats": plan.repeats}  # fmt: skip
    for prefix in (
        ("", "pg_") if plan.sqlite and plan.server else ("pg_",) if plan.server else ("",)
    ):
        ours = _median(runs[f"{prefix}fleetlab"], "turns_per_s")
        theirs = _median(runs[f"{prefix}langgraph"], "turns_per_s")
        raw = _median(runs[f"{prefix}raw"], "commits_per_s")
        out |= {
            f"{prefix}fleetlab_turns_per_s": ours, f"{prefix}langgraph_turns_per_s": theirs,
            f"{prefix}raw_commits_per_s": raw, f"{prefix}ratio_vs_langgraph": ours / theirs,
            f"{prefix}fraction_of_commit_limit": ours / raw,
            f"{prefix}fleetlab_peak_rss_mb": _median(runs[f"{prefix}fleetlab"], "peak_rss_mb"),
            f"{prefix}langgraph_peak_rss_mb": _median(runs[f"{prefix}langgraph"], "peak_rss_mb"),
            f"{prefix}fleetlab_bytes_per_turn":
                _median(runs[f"{prefix}fleetlab"], "bytes_per_turn"),
            f"{prefix}langgraph_bytes_per_turn":
                _median(runs[f"{prefix}langgraph"], "bytes_per_turn"),
            f"{prefix}fleetlab_settings": runs[f"{prefix}fleetlab"][0]["settings"],
            f"{prefix}langgraph_settings": runs[f"{prefix}langgraph"][0]["settings"],
        }  # fmt: skip
    if plan.sqlite and plan.server:
        out["pg_over_sqlite_turns"] = out["pg_fleetlab_turns_per_s"] / out["fleetlab_turns_per_s"]
    return {**out, "runs": runs}


def concurrency(plan: Plan) -> dict[str, Any]:
    params = ({"agents": 20, "turns": 3, "low": 0.01, "high": 0.05} if plan.quick
              else {"agents": 1000, "turns": 10, "low": 0.2, "high": 2.0})  # fmt: skip
    # Quick: calls long enough that the three processes' agents overlap (a steady state).
    hosts: dict[str, Any] = ({"agents": 30, "turns": 4, "low": 0.05, "high": 0.15} if plan.quick
                             else {**params, "agents": 1000})  # fmt: skip
    hosts["hosts"] = 3
    runs: list[dict[str, Any]] = []
    pg_runs: list[dict[str, Any]] = []
    for i in range(plan.repeats):
        if plan.sqlite:
            console.print(f"  concurrency run {i + 1}/{plan.repeats} ({params['agents']} agents)")
            runs.append(_worker("concurrency", **params))
        if plan.server:
            console.print(
                f"  concurrency run {i + 1}/{plan.repeats} on PostgreSQL ({hosts['hosts']}"
                f" worker processes, {hosts['agents']} agents in all)"
            )
            pg_runs.append(_worker("fleet_hosts", **hosts, server=plan.server))
    out: dict[str, Any] = {**params, "repeats": plan.repeats}
    if runs:
        out |= {key: _median(runs, key) for key in (
            "turns_per_s", "steady_turns_per_s", "littles_law_turns_per_s",
            "fraction_of_littles_law", "fraction_of_littles_law_whole_run",
            "loop_lag_p50_ms", "loop_lag_p99_ms", "peak_rss_mb")}  # fmt: skip
    if pg_runs:
        out |= {"pg_hosts": hosts["hosts"], "pg_agents": hosts["agents"],
                "pg_agents_per_host": pg_runs[0]["shares"]}  # fmt: skip
        out |= {f"pg_{key}": _median(pg_runs, key) for key in (
            "turns_per_s", "steady_turns_per_s", "littles_law_turns_per_s",
            "fraction_of_littles_law", "fraction_of_littles_law_whole_run")}  # fmt: skip
        # Each worker's p99 lag (median over the runs), and the worst worker's.
        each = [statistics.median(r["loop_lag_p99_ms"][w] for r in pg_runs)
                for w in range(hosts["hosts"])]  # fmt: skip
        out |= {"pg_loop_lag_p99_ms": max(each),
                "pg_loop_lag_p99_ms_each": [round(x, 3) for x in each],
                "pg_peak_rss_mb": max(max(r["peak_rss_mb"]) for r in pg_runs)}  # fmt: skip
    return {**out, "runs": runs, "pg_runs": pg_runs}


def reports(plan: Plan) -> dict[str, Any]:
    tasks = plan.year_tasks or (2_000 if plan.quick else 1_000_000)
    out: dict[str, Any] = {}
    if plan.sqlite:
        db = Path("reports/bench") / f"year-{tasks}.db"
        console.print(f"  reports on {tasks:,} tasks ({db}; generated once, then reused)")
        out = _worker("reports", tasks=tasks, db=str(db), repeats=plan.repeats,
                      digest=not plan.quick)  # fmt: skip
    if plan.server:
        console.print(f"  reports on {tasks:,} tasks on PostgreSQL (loaded with COPY)")
        pg = _worker("reports", tasks=tasks, server=plan.server, repeats=plan.repeats,
                     digest=not plan.quick)  # fmt: skip
        out |= {f"pg_{k}": v for k, v in pg.items()}
    if plan.sqlite and plan.server:
        # The same rows (and event order), the same week's metrics and trend on both.
        out["same_rows_on_both"] = out["events_checksum"] == out["pg_events_checksum"]
        out["same_week_metrics_on_both"] = (
            out["week_metrics_fingerprint"] == out["pg_week_metrics_fingerprint"]
        )
        out["same_trend_on_both"] = out["trend_fingerprint"] == out["pg_trend_fingerprint"]
    return out


def experiments(plan: Plan) -> dict[str, Any]:
    if not plan.sqlite:
        return {}
    runs = []
    for i in range(plan.repeats):
        console.print(f"  experiments run {i + 1}/{plan.repeats} (decomposition_ab on sim:instant)")
        runs.append(_worker("experiments", quick=plan.quick))
    return {
        "trials": runs[0]["trials"],
        "trials_per_s": _median(runs, "trials_per_s"),
        "fraction_outside_model": _median(runs, "fraction_outside_model"),
        "runs": runs,
    }


def workers(plan: Plan) -> dict[str, Any]:
    """decomposition_ab with 1 and 2 worker processes, interleaved (see ``_workers``)."""
    if not plan.sqlite:
        return {}
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for i in range(plan.repeats):
        for n in (1, 2) if i % 2 == 0 else (2, 1):
            console.print(f"  workers run {i + 1}/{plan.repeats}: decomposition_ab, {n} worker(s)")
            runs[n].append(_worker("experiments_workers", quick=plan.quick, workers=n))
    one, two = _median(runs[1], "trials_per_s"), _median(runs[2], "trials_per_s")
    every = runs[1] + runs[2]
    digests = {r["fixed_digest"] for r in every}
    differing = sorted(
        key for key in every[0]["fixed_rows"] if len({r["fixed_rows"].get(key) for r in every}) > 1
    )
    for r in every:
        r.pop("fixed_rows")
    return {
        "workers_trials": runs[1][0]["trials"],
        "workers_1_trials_per_s": one,
        "workers_2_trials_per_s": two,
        "workers_speedup": two / one,
        "workers_same_fixed_results": len(digests) == 1,
        "workers_differing_rows": differing,
        "workers_load_before": [r["load_before"] for r in runs[1] + runs[2]],
        "runs": runs[1] + runs[2],
    }


RUNNERS: dict[str, Callable[[Plan], dict[str, Any]]] = {
    "orchestration": orchestration,
    "concurrency": concurrency,
    "reports": reports,
    "experiments": experiments,
    "workers": workers,
}

# (key, op, goal, label); op "" is a figure measured without a goal.
GOALS: list[tuple[str, str, float, str]] = [
    ("ratio_vs_langgraph", ">=", 10.0,
     "SQLite: fleetlab turns/s over LangGraph's SQLite saver, equal durability"),
    ("pg_ratio_vs_langgraph", "", 0.0,
     "PostgreSQL: fleetlab turns/s over LangGraph's Postgres saver, equal durability"),
    ("fraction_of_commit_limit", ">=", 0.5, "SQLite: fleetlab turns/s over raw commits/s"),
    ("pg_fraction_of_commit_limit", "", 0.0, "PostgreSQL: fleetlab turns/s over raw commits/s"),
    ("fraction_of_littles_law", ">=", 0.95,
     "SQLite, 1 process, 1,000 agents: steady state over Little's-law throughput"),
    ("loop_lag_p99_ms", "<", 50.0, "SQLite, 1 process, 1,000 agents: event-loop lag p99"),
    ("peak_rss_mb", "<", 1024.0, "SQLite, 1 process, 1,000 agents: peak RSS (MB)"),
    ("pg_fraction_of_littles_law", ">=", 0.95,
     "PostgreSQL, 3 worker processes, 1,000 agents: steady state over Little's law"),
    ("pg_loop_lag_p99_ms", "<", 50.0,
     "PostgreSQL, 3 worker processes: event-loop lag p99 of the worst worker"),
    ("week_metrics_s", "<", 3.0, "SQLite: one week's metrics on a year of data (s)"),
    ("pg_week_metrics_s", "", 0.0, "PostgreSQL: one week's metrics on a year of data (s)"),
    ("trend_52w_s", "<", 1.0, "SQLite: 52-week trend on a year of data (s)"),
    ("pg_trend_52w_s", "<", 1.0, "PostgreSQL: 52-week trend on a year of data (s)"),
    ("workers_speedup", ">=", 1.8,
     "decomposition_ab trials/s with 2 worker processes over 1 (same fixed-variant rows)"),
]  # fmt: skip

# The side-by-side table: (label, SQLite's key, PostgreSQL's key), part by part.
SIDE_BY_SIDE: list[tuple[str, str, str, str]] = [
    ("orchestration", "fleetlab turns/s", "fleetlab_turns_per_s", "pg_fleetlab_turns_per_s"),
    ("orchestration", "LangGraph turns/s (its saver for that engine)",
     "langgraph_turns_per_s", "pg_langgraph_turns_per_s"),
    ("orchestration", "fleetlab over LangGraph", "ratio_vs_langgraph", "pg_ratio_vs_langgraph"),
    ("orchestration", "raw one-row commits/s", "raw_commits_per_s", "pg_raw_commits_per_s"),
    ("orchestration", "fleetlab over raw commits", "fraction_of_commit_limit",
     "pg_fraction_of_commit_limit"),
    ("orchestration", "fleetlab bytes written per turn (PostgreSQL: server WAL)",
     "fleetlab_bytes_per_turn", "pg_fleetlab_bytes_per_turn"),
    ("orchestration", "LangGraph bytes written per turn (PostgreSQL: server WAL)",
     "langgraph_bytes_per_turn", "pg_langgraph_bytes_per_turn"),
    ("concurrency", "agents (worker processes)", "agents", "pg_agents"),
    ("concurrency", "steady-state turns/s", "steady_turns_per_s", "pg_steady_turns_per_s"),
    ("concurrency", "Little's-law turns/s (agents / mean latency)", "littles_law_turns_per_s",
     "pg_littles_law_turns_per_s"),
    ("concurrency", "fraction of Little's law", "fraction_of_littles_law",
     "pg_fraction_of_littles_law"),
    ("concurrency", "event-loop lag p99 (ms; PostgreSQL: worst worker)", "loop_lag_p99_ms",
     "pg_loop_lag_p99_ms"),
    ("reports", "year: tasks", "tasks", "pg_tasks"),
    ("reports", "year: events", "events", "pg_events"),
    ("reports", "year: database size (MB)", "db_size_mb", "pg_db_size_mb"),
    ("reports", "year: build or load (s; 0 = reused)", "generate_s", "pg_generate_s"),
    ("reports", "one week's metrics (s)", "week_metrics_s", "pg_week_metrics_s"),
    ("reports", "52-week trend (s)", "trend_52w_s", "pg_trend_52w_s"),
    ("reports", "plain-SQL baseline (s)", "plain_sql_s", "pg_plain_sql_s"),
    ("reports", "papermill digest (s)", "papermill_digest_s", "pg_papermill_digest_s"),
]  # fmt: skip


NOTES = [
    "- Each workload runs in a process of its own; a part's systems are interleaved within"
    " each repeat, and figures are medians of the repeats (latest.json lists every run).",
    "- orchestration: N goals of 6 turns each (five no-op tool calls, then an answer), 16 at"
    " once, on a zero-latency model. LangGraph runs the same script as a ReAct agent"
    ' (`create_react_agent`, `ainvoke`, `durability="sync"`) with its SQLite saver'
    " (`AsyncSqliteSaver`) and its Postgres saver (`AsyncPostgresSaver`, the asyncio class"
    " of langgraph-checkpoint-postgres' `PostgresSaver`, opened with `from_conn_string`), each"
    " on a new database. Raw commits: one-row transactions, SQLite WAL synchronous=FULL /"
    " PostgreSQL synchronous_commit=on.",
    "- concurrency: 1,000 agents of 10 turns with model calls of 0.2-2 s. SQLite: one process."
    " PostgreSQL: three worker processes (334 + 333 + 333 slots) on one database over TCP,"
    " started together. Throughput is read from the event log in the steady state (every"
    " agent has made its first call, none has finished); Little's law is agents / mean call"
    " latency; event-loop lag is probed (10 ms sleeps) in every process.",
    "- reports: one year of a busy fleet (52 weeks, the busiest week 2x) generated once from a"
    " fixed seed; PostgreSQL gets the same rows (tasks by COPY, events by INSERT ... SELECT on"
    " the server, in SQLite's order), indexes built afterwards, then VACUUM ANALYZE."
    " `same_rows_on_both` compares event checksums, `same_week_metrics_on_both` the week's"
    " whole metrics (all but the instant computed and the engine's own database check).",
    "- workers: the shipped decomposition_ab experiment (sim:instant) run with 1 and with 2"
    " worker processes, alternating, each a fresh process and results folder; trials/s are"
    " medians, `workers_same_fixed_results` compares the fixed variants' rows (all but wall"
    " clock, folder and trace id columns) across every run.",
]


def _flatten(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    top: dict[str, Any] = {}
    for part in results.values():
        for key, value in part.items():
            skipped = key in ("runs", "pg_runs", "measured_at")
            if not skipped and not isinstance(value, dict | list):
                top.setdefault(key, value)
    if "peak_rss_mb" in results.get("concurrency", {}):
        top["peak_rss_mb"] = results["concurrency"]["peak_rss_mb"]
    return top


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


def _markdown(top: dict[str, Any], results: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# fleetlab benchmarks", "",
        f"Written at {meta['at']} on {meta['machine']} ({meta['cpus']} CPUs; each part's"
        " `measured_at` below says when it ran), "
        f"{'quick sizes (a smoke run, not a measurement)' if meta['quick'] else 'full sizes'}; "
        "medians of the runs listed in latest.json. "
        f"Backends: {', '.join(meta['backends'])}; PostgreSQL: {meta['postgresql']}.", "",
        "| figure | value | goal | met |", "|---|---|---|---|",
    ]  # fmt: skip
    for key, op, goal, label in GOALS:
        if key not in top:
            continue
        value = float(top[key])
        if not op:
            lines.append(f"| {label} (`{key}`) | {value:,.3g} | (measured) | - |")
            continue
        met = value >= goal if op == ">=" else value < goal
        lines.append(
            f"| {label} (`{key}`) | {value:,.3g} | {op} {goal:g} | {'yes' if met else 'NO'} |"
        )
    side = [(part, label, a, b) for part, label, a, b in SIDE_BY_SIDE
            if a in results.get(part, {}) or b in results.get(part, {})]  # fmt: skip
    if side:
        lines += ["", "## SQLite and PostgreSQL side by side", "",
                  "| part | figure | SQLite | PostgreSQL |", "|---|---|---|---|"]  # fmt: skip
        for part, label, a, b in side:
            figures = results[part]
            lines.append(
                f"| {part} | {label} | {_shown(figures.get(a))} | {_shown(figures.get(b))} |"
            )
    lines += ["", "## How these were measured", "", *NOTES]
    lines += ["", "## All figures", "", "| part | figure | value |", "|---|---|---|"]
    for part, figures in results.items():
        for key, value in figures.items():
            if key in ("runs", "pg_runs", "timings", "pg_timings"):
                continue
            lines.append(f"| {part} | {key} | {_shown(value)} |")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _postgres(backends: list[str], db: str | None) -> Iterator[tuple[str | None, str]]:
    """The PostgreSQL server to measure on, and how to describe it: ``db`` when given, else
    a throwaway cluster started here (stopped on leaving); None when not asked for, or when
    no cluster can start here (the reason is printed and reported)."""
    if "postgresql" not in backends:
        yield None, "not run"
        return
    from fleetlab.store.postgres.bench import server_version

    if db is not None:
        from fleetlab.store.url import redacted

        yield db, f"PostgreSQL {server_version(db)} at {redacted(db)}"
        return
    from fleetlab.store.postgres.cluster import ClusterUnavailable, TempCluster

    try:
        cluster = TempCluster(listen="127.0.0.1")
    except ClusterUnavailable as exc:
        console.print(f"[yellow]PostgreSQL side skipped: {exc}[/]")
        yield None, f"skipped ({exc})"
        return
    try:
        url = cluster.tcp_url("postgres")
        yield (
            url,
            (
                f"throwaway cluster, PostgreSQL {server_version(url)}, TCP 127.0.0.1, fsync=on,"
                " shared_buffers=128MB"
            ),
        )
    finally:
        cluster.stop()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fleetlab.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("part", nargs="?", default="all", choices=("all", *PARTS))
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the code runs")
    parser.add_argument("--repeats", type=int, default=None, help="runs per workload (median)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench"), help="output folder")
    parser.add_argument(
        "--backends", default=",".join(BACKENDS),
        help="comma-separated: sqlite, postgresql (default: both, side by side)",
    )  # fmt: skip
    parser.add_argument(
        "--db", metavar="URL", default=None,
        help="postgresql://... server for the PostgreSQL side (default: a throwaway cluster)",
    )  # fmt: skip
    parser.add_argument(
        "--year-tasks", type=int, default=None,
        help="tasks in the reports' year db (default 1,000,000; quick 2,000)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - set(BACKENDS)
    if unknown or not args.backends:
        parser.error(f"--backends takes sqlite and/or postgresql, not {','.join(sorted(unknown))}")
    if args.db is not None:
        from fleetlab.store.url import is_server_url, redacted

        if not is_server_url(args.db):
            parser.error(f"--db takes a postgresql:// URL, not {redacted(args.db)!r}")
        if "postgresql" not in args.backends:
            args.backends.append("postgresql")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    parts = [p for p in PARTS if args.part in ("all", p) and p in RUNNERS]
    results: dict[str, dict[str, Any]] = {}
    with _postgres(args.backends, args.db) as (server, described):
        plan = Plan(args.quick, repeats, "sqlite" in args.backends, server, args.year_tasks)
        for part in parts:
            console.print(f"[bold]{part}[/]")
            results[part] = RUNNERS[part](plan)
            results[part]["measured_at"] = SystemClock().now().isoformat(timespec="seconds")
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
        "backends": [b for b in BACKENDS if b in args.backends and (b == "sqlite" or server)],
        "postgresql": described,
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
