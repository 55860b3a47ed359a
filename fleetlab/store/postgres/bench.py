"""The benchmarks' PostgreSQL-only work: a database of its own for each run, bulk-loading a
year-sized fleet with COPY, the raw-insert commit probe (the server's durable-commit limit)
and the plain-SQL baseline of the reports.

Nothing here is part of the fleet's own storage path: these bypass ``PostgresStore`` on
purpose, to measure (or quickly fill) the server underneath it. The year's rows are the same
as SQLite's (``fleetlab.store.sqlite.bench.bulk_load_year``): the same task rows, and events
derived from them by the same rules, inserted in the same order (so even ``seq`` matches).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from fleetlab.store.postgres import PostgresStore

__all__ = [
    "bulk_load_year",
    "create_database",
    "database_note",
    "drop_database",
    "plain_sql_metrics",
    "raw_insert_commits",
    "server_version",
    "set_database_note",
    "wal_position",
    "with_database",
]

#: The ``tasks`` row the year generator writes (SQLite's column order); ``lease_epoch`` is 0.
TASK_COLUMNS = (
    "id", "parent_id", "root_id", "trace_id", "span_id", "depth", "role", "title", "spec",
    "priority", "status", "attempts", "preempt_streak", "created_us", "started_us",
    "finished_us", "updated_us", "lease_owner", "lease_expires_us", "heartbeat_us", "result",
    "error", "budget_usd", "budget_tokens", "tokens_in", "tokens_out", "cost_usd",
    "tree_tokens_in", "tree_tokens_out", "tree_cost_usd", "tree_agents",
)  # fmt: skip

_EVENT_COLUMNS = "id, ts_us, kind, trace_id, span_id, parent_span_id, task_id, role, attrs"

# The year's events, one statement per kind in SQLite's order: each task's spawn, start,
# model calls and tool calls (one per turn, 90 s apart; a task's turns are tokens_in / 2000)
# and its terminal event. Numbers as NUMERIC, so their JSON text is SQLite's (0.00825).
_EVENTS = (
    "SELECT id || ':s', created_us, 'task.spawned', trace_id, span_id, '', id, role,"
    " '{}'::jsonb FROM tasks ORDER BY seq",
    "SELECT id || ':b', started_us, 'task.started', trace_id, span_id, '', id, role,"
    ' \'{"from":"queued"}\'::jsonb FROM tasks ORDER BY seq',
    "SELECT id || ':m' || n, started_us + n * 90000000, 'model.call', trace_id, '', span_id,"
    " id, 'executor', jsonb_build_object('turn', n, 'model', 'sim:default', 'simulated', 1,"
    " 'input_tokens', 1800 + 150 * n, 'output_tokens', 160, 'cost_usd',"
    " 0.0078 + 0.00045 * n, 'latency_s', 1.2, 'stop_reason', 'tool_use')"
    " FROM tasks CROSS JOIN LATERAL generate_series(1, tokens_in / 2000) AS n ORDER BY seq, n",
    "SELECT id || ':t' || n, started_us + n * 90000000 + 1000, 'tool.call', trace_id, '',"
    " span_id, id, 'executor', jsonb_build_object('turn', n, 'tool', 'write_file',"
    " 'is_error', 0, 'latency_s', 0.001)"
    " FROM tasks CROSS JOIN LATERAL generate_series(1, tokens_in / 2000) AS n ORDER BY seq, n",
    "SELECT id || ':e', finished_us, 'task.' || status, trace_id, span_id, '', id, role,"
    ' \'{"from":"running"}\'::jsonb FROM tasks WHERE finished_us IS NOT NULL ORDER BY seq',
)


def with_database(url: str, name: str) -> str:
    """``url`` with its database name replaced by ``name`` (host, user and query kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(name, safe="")))


@contextlib.contextmanager
def _connect(url: str) -> Iterator[psycopg.Connection[Any]]:
    conn = psycopg.connect(url, autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


def create_database(server_url: str, name: str, *, note: str | None = None) -> str:
    """A new empty database ``name`` on the server ``server_url`` reaches (one already there
    is dropped first); returns its URL. The role needs ``CREATEDB``. ``note`` is kept as the
    database's comment (see ``database_note``)."""
    with _connect(server_url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        if note is not None:
            conn.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(name), sql.Literal(note)
                )
            )
    return with_database(server_url, name)


def database_note(server_url: str, name: str) -> str | None:
    """The comment ``create_database`` left on ``name``; None if there is no such database
    or it has no comment."""
    with _connect(server_url) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
    return None if row is None else row[0]


def set_database_note(server_url: str, name: str, note: str) -> None:
    """Set the comment of database ``name`` (the mark that a bulk load finished)."""
    with _connect(server_url) as conn:
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(note))
        )


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` (closing whatever is still connected to it)."""
    with _connect(server_url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def bulk_load_year(url: str, tasks: Iterable[tuple[object, ...]]) -> tuple[int, int]:
    """Fill the empty database at ``url`` (the real schema, via the migrations) with
    ``tasks`` (rows of ``TASK_COLUMNS``) by COPY and, in bulk on the server, their events:
    the same rows as SQLite's bulk load, in the same order.

    Fast, not durable: asynchronous commits, plain indexes and the unique index on event
    ids built at the end, then VACUUM ANALYZE (a steady-state database, as autovacuum would
    leave it). Returns ``(tasks written, events written)``.
    """
    PostgresStore(url).close()
    with _connect(url) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET work_mem = '256MB'")
        indexes = [
            r[0]
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
                " AND tablename IN ('tasks', 'events') AND indexname NOT IN"
                " (SELECT conname FROM pg_constraint)"
            )
        ]
        rebuild = [
            r[0]
            for r in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE indexname = ANY(%s)", (indexes,)
            )
        ]
        unique = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'events'::regclass AND contype = 'u'"
        ).fetchall()
        for name in indexes:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        for name, _ in unique:
            conn.execute(
                sql.SQL("ALTER TABLE events DROP CONSTRAINT {}").format(sql.Identifier(name))
            )
        n_tasks = _copy_tasks(conn, tasks)
        for select in _EVENTS:
            conn.execute(f"INSERT INTO events ({_EVENT_COLUMNS}) {select}")
        for name, definition in unique:
            conn.execute(
                sql.SQL("ALTER TABLE events ADD CONSTRAINT {} {}").format(
                    sql.Identifier(name), sql.SQL(definition)
                )
            )
        for statement in rebuild:
            conn.execute(statement)
        conn.execute("VACUUM (ANALYZE) tasks")
        conn.execute("VACUUM (ANALYZE) events")
        row = conn.execute("SELECT COUNT(*) FROM events").fetchone()
        n_events = int(row[0]) if row else 0
    return n_tasks, n_events


def _copy_tasks(conn: psycopg.Connection[Any], tasks: Iterable[tuple[object, ...]]) -> int:
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in (*TASK_COLUMNS, "lease_epoch"))
    count = 0
    with conn.transaction(), conn.cursor() as cur:
        statement = sql.SQL("COPY tasks ({}) FROM STDIN").format(columns)
        with cur.copy(statement) as copy:
            for row in tasks:
                copy.write_row((*row, 0))
                count += 1
    return count


def raw_insert_commits(url: str, n: int) -> float:
    """Seconds to commit ``n`` one-row transactions (``synchronous_commit = on``: each
    acknowledged once on the server's disk) to a new table in the database at ``url``: the
    physical limit a store's commits can approach."""
    with _connect(url) as conn:
        conn.execute("SET synchronous_commit = on")
        conn.execute("CREATE TABLE raw_commits (id BIGSERIAL PRIMARY KEY, v TEXT)")
        value = "x" * 200
        t0 = time.perf_counter()
        for _ in range(n):
            with conn.transaction():
                conn.execute("INSERT INTO raw_commits (v) VALUES (%s)", (value,))
        return time.perf_counter() - t0


_PLAIN_QUERIES = {
    "spawned": "SELECT COUNT(*) FROM tasks WHERE created_us >= %(lo)s AND created_us < %(hi)s",
    "by_status": "SELECT status, COUNT(*) FROM tasks"
    " WHERE created_us >= %(lo)s AND created_us < %(hi)s GROUP BY status",
    "finished": "SELECT status, COUNT(*) FROM tasks"
    " WHERE finished_us >= %(lo)s AND finished_us < %(hi)s GROUP BY status",
    "events_by_kind": "SELECT kind, COUNT(*) FROM events"
    " WHERE ts_us >= %(lo)s AND ts_us < %(hi)s GROUP BY kind",
    "cost_per_day": "SELECT ts_us / 86400000000, SUM(CAST(attrs ->> 'cost_usd' AS DOUBLE"
    " PRECISION)) FROM events WHERE kind = 'model.call' AND ts_us >= %(lo)s AND ts_us < %(hi)s"
    " GROUP BY 1",
    "tokens_per_role": "SELECT role, SUM(CAST(attrs ->> 'input_tokens' AS BIGINT)) FROM events"
    " WHERE kind = 'model.call' AND ts_us >= %(lo)s AND ts_us < %(hi)s GROUP BY role",
    "failures": "SELECT error, COUNT(*) FROM tasks WHERE status = 'failed' AND"
    " finished_us >= %(lo)s AND finished_us < %(hi)s GROUP BY error ORDER BY 2 DESC LIMIT 10",
}


def plain_sql_metrics(url: str, start_us: int, end_us: int) -> dict[str, list[Any]]:
    """The headline figures of ``[start_us, end_us)`` in the fleet database at ``url``, one
    plain SQL query each on a bare connection: the baseline the digest's metrics are timed
    against (the same queries as SQLite's, in PostgreSQL's JSON syntax)."""
    with _connect(url) as conn:
        return {
            name: conn.execute(query, {"lo": start_us, "hi": end_us}).fetchall()
            for name, query in _PLAIN_QUERIES.items()
        }


def wal_position(url: str) -> int:
    """The server's write-ahead log position in bytes: the difference between two readings
    is what the server wrote for everything committed between them (cluster-wide)."""
    with _connect(url) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    return int(row[0]) if row else 0


def server_version(url: str) -> str:
    """The server's version, e.g. ``15.14``."""
    with _connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"
