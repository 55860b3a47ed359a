"""A year of a busy fleet, generated fast: batched inserts with the indexes built afterwards."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fleetlab.clock import to_us
from fleetlab.store import open_store

__all__ = ["YEAR_START", "generate_year"]

YEAR_START = datetime(2025, 11, 24, tzinfo=UTC)  # Monday of 2025-W48: 52 weeks to 2026-W47
_INDEXES = ("tasks_claim", "tasks_trace", "tasks_parent", "tasks_created", "events_task",
            "events_trace", "events_kind_ts")  # fmt: skip


def generate_year(path: Path, tasks: int, *, seed: int = 7) -> dict[str, int]:
    """Write ``tasks`` tasks (about 20 events each) over 52 weeks into a new fleet db.

    The busiest week is week 40 (twice the usual arrivals). Returns counts written.
    """
    if path.exists():
        path.unlink()
    open_store(path).close()  # the real schema, via the migrations
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA cache_size=-1000000")  # 1 GB of page cache for the index builds
    index_sql = [r[0] for r in conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")]  # fmt: skip
    for name in _INDEXES:
        conn.execute(f"DROP INDEX IF EXISTS {name}")
    rng = random.Random(seed)
    weeks = [2.0 if w == 40 else rng.uniform(0.8, 1.2) for w in range(52)]
    total_weight = sum(weeks)
    year_us = 52 * 7 * 86_400_000_000
    start_us = to_us(YEAR_START)
    task_rows: list[tuple[object, ...]] = []
    conn.execute("BEGIN")
    ids = 0
    for week, weight in enumerate(weeks):
        count = round(tasks * weight / total_weight)
        week_start = start_us + week * 7 * 86_400_000_000
        for _ in range(count):
            ids += 1
            task_id = f"{ids:012x}"
            created = week_start + rng.randrange(7 * 86_400_000_000)
            turns = rng.randint(4, 13)  # about 20 events a task on average
            running = 90_000_000 * turns + rng.randrange(600_000_000)
            fate = rng.random()
            end = created + rng.randrange(60_000_000, 3_600_000_000) + running
            in_flight = end > start_us + year_us
            status = ("running" if in_flight else "failed" if fate < 0.04 else
                      "cancelled" if fate < 0.05 else "completed")  # fmt: skip
            cost = sum(0.0078 + 0.00045 * t for t in range(1, turns + 1))
            task_rows.append((
                task_id, None, task_id, f"{ids:032x}", f"{ids:016x}", 0, "orchestrator",
                f"goal {ids}", '{"suite_task":"core:rename-readme","phase":"new"}', 50, status,
                1, 0, created, created + 1_000_000, None if in_flight else end, end, None, None,
                end if in_flight else None, None,
                "verifier: output.json missing" if status == "failed" else None, None, None,
                2000 * turns, 160 * turns, cost, 2000 * turns, 160 * turns, cost, 0,
            ))  # fmt: skip
            if len(task_rows) >= 50_000:
                _flush(conn, task_rows)
    _flush(conn, task_rows)
    # Events in bulk, in SQL: spawned, started, a model call and a tool call per turn (90 s
    # apart), and the terminal event of every finished task.
    conn.execute("CREATE TEMP TABLE turns (n INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO turns VALUES (?)", [(n,) for n in range(1, 14)])
    conn.execute(
        "INSERT INTO events (id, ts_us, kind, trace_id, span_id, parent_span_id, task_id, role,"
        " attrs) SELECT id || ':s', created_us, 'task.spawned', trace_id, span_id, '', id,"
        " role, '{}' FROM tasks"
    )
    conn.execute(
        "INSERT INTO events (id, ts_us, kind, trace_id, span_id, parent_span_id, task_id, role,"
        " attrs) SELECT id || ':b', started_us, 'task.started', trace_id, span_id, '', id, role,"
        ' \'{"from":"queued"}\' FROM tasks'
    )
    for kind, prefix, offset, attrs in (
        ("model.call", "m", 0, "json_object('turn', n, 'model', 'sim:default', 'simulated', 1,"
         " 'input_tokens', 1800 + 150 * n, 'output_tokens', 160, 'cost_usd',"
         " 0.0078 + 0.00045 * n, 'latency_s', 1.2, 'stop_reason', 'tool_use')"),
        ("tool.call", "t", 1000, "json_object('turn', n, 'tool', 'write_file', 'is_error', 0,"
         " 'latency_s', 0.001)"),
    ):  # fmt: skip
        conn.execute(
            "INSERT INTO events (id, ts_us, kind, trace_id, span_id, parent_span_id, task_id,"
            f" role, attrs) SELECT id || ':{prefix}' || n,"
            f" started_us + n * 90000000 + {offset}, '{kind}', trace_id, '', span_id, id,"
            f" 'executor', {attrs} FROM tasks JOIN turns ON n <= tokens_in / 2000"
        )
    conn.execute(
        "INSERT INTO events (id, ts_us, kind, trace_id, span_id, parent_span_id, task_id, role,"
        " attrs) SELECT id || ':e', finished_us, 'task.' || status, trace_id, span_id, '', id,"
        ' role, \'{"from":"running"}\' FROM tasks WHERE finished_us IS NOT NULL'
    )
    conn.execute("COMMIT")
    n_events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    for sql in index_sql:
        conn.execute(sql)
    conn.execute("PRAGMA analysis_limit=1000")
    conn.execute("ANALYZE")
    conn.close()
    return {"tasks": ids, "events": n_events}


def _flush(conn: sqlite3.Connection, tasks: list[tuple[object, ...]]) -> None:
    # the last column, lease_epoch (schema v4): never claimed by a fenced fleet
    conn.executemany(f"INSERT INTO tasks VALUES ({','.join('?' * 31)}, 0)", tasks)
    tasks.clear()


def busiest_week_label() -> str:
    """The ISO week (UTC) the generator makes busiest."""
    monday = YEAR_START + timedelta(weeks=40)
    iso = monday.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"
