"""The benchmarks' SQLite-only work: bulk-loading a year-sized fleet file, the raw-insert
commit probe (the file's physical fsync limit) and the plain-SQL baseline of the reports.

Nothing here is part of the fleet's own storage path: these bypass ``SQLiteStore`` on
purpose, to measure (or quickly fill) the file underneath it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from itertools import islice
from pathlib import Path
from typing import Any

from fleetlab.store.sqlite import SQLiteStore

__all__ = ["bulk_load_year", "plain_sql_metrics", "raw_insert_commits"]

#: The fleet schema's indexes, dropped during a bulk load and rebuilt after it.
_INDEXES = ("tasks_claim", "tasks_trace", "tasks_parent", "tasks_created", "events_task",
            "events_trace", "events_kind_ts")  # fmt: skip
_TASK_COLUMNS = 31  # the row the generator writes; lease_epoch (schema v4) is always 0
_CHUNK = 50_000


def bulk_load_year(path: Path, tasks: Iterable[tuple[object, ...]]) -> tuple[int, int]:
    """Create a fleet database at ``path`` (the real schema, via the migrations) holding
    ``tasks`` (full ``tasks`` rows but ``lease_epoch``) and, in bulk, their events: spawned,
    started, a model call and a tool call per turn (90 s apart; a task's turns are
    ``tokens_in / 2000``), and the terminal event of every finished task.

    Fast, not durable: no journal and no fsync while loading, indexes built at the end.
    Returns ``(tasks written, events written)``.
    """
    SQLiteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA cache_size=-1000000")  # 1 GB of page cache for the index builds
        index_sql = [r[0] for r in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")]  # fmt: skip
        for name in _INDEXES:
            conn.execute(f"DROP INDEX IF EXISTS {name}")
        conn.execute("BEGIN")
        n_tasks = _insert_tasks(conn, tasks)
        _insert_events(conn)
        conn.execute("COMMIT")
        n_events = int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        for sql in index_sql:
            conn.execute(sql)
        conn.execute("PRAGMA analysis_limit=1000")
        conn.execute("ANALYZE")
    finally:
        conn.close()
    return n_tasks, n_events


def _insert_tasks(conn: sqlite3.Connection, tasks: Iterable[tuple[object, ...]]) -> int:
    sql = f"INSERT INTO tasks VALUES ({','.join('?' * _TASK_COLUMNS)}, 0)"
    rows = iter(tasks)
    count = 0
    while chunk := list(islice(rows, _CHUNK)):
        conn.executemany(sql, chunk)
        count += len(chunk)
    return count


def _insert_events(conn: sqlite3.Connection) -> None:
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


def raw_insert_commits(path: Path, n: int, synchronous: str = "FULL") -> float:
    """Seconds to commit ``n`` one-row transactions to a new SQLite file at ``path`` (WAL,
    the given ``synchronous``: FULL, NORMAL or OFF): the physical limit a store's commits
    can approach."""
    if synchronous not in ("FULL", "NORMAL", "OFF"):
        raise ValueError(f"synchronous must be FULL, NORMAL or OFF, not {synchronous!r}")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        t0 = time.perf_counter()
        for _ in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (v) VALUES (?)", ("x" * 200,))
            conn.execute("COMMIT")
        return time.perf_counter() - t0
    finally:
        conn.close()


_PLAIN_QUERIES = {
    "spawned": "SELECT COUNT(*) FROM tasks WHERE created_us >= ? AND created_us < ?",
    "by_status": "SELECT status, COUNT(*) FROM tasks WHERE created_us >= ? AND created_us < ?"
    " GROUP BY status",
    "finished": "SELECT status, COUNT(*) FROM tasks WHERE finished_us >= ? AND finished_us < ?"
    " GROUP BY status",
    "events_by_kind": "SELECT kind, COUNT(*) FROM events WHERE ts_us >= ? AND ts_us < ?"
    " GROUP BY kind",
    "cost_per_day": "SELECT ts_us / 86400000000, SUM(json_extract(attrs, '$.cost_usd'))"
    " FROM events WHERE kind = 'model.call' AND ts_us >= ? AND ts_us < ? GROUP BY 1",
    "tokens_per_role": "SELECT role, SUM(json_extract(attrs, '$.input_tokens')) FROM events"
    " WHERE kind = 'model.call' AND ts_us >= ? AND ts_us < ? GROUP BY role",
    "failures": "SELECT error, COUNT(*) FROM tasks WHERE status = 'failed' AND"
    " finished_us >= ? AND finished_us < ? GROUP BY error ORDER BY 2 DESC LIMIT 10",
}


def plain_sql_metrics(path: Path, start_us: int, end_us: int) -> dict[str, list[Any]]:
    """The headline figures of ``[start_us, end_us)`` in the fleet file ``path``, one plain
    SQL query each on a bare connection: the baseline the digest's metrics are timed against."""
    conn = sqlite3.connect(path)
    try:
        return {
            name: conn.execute(sql, (start_us, end_us)).fetchall()
            for name, sql in _PLAIN_QUERIES.items()
        }
    finally:
        conn.close()
