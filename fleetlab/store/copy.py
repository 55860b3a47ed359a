"""Copy a whole fleet from one database to another (SQLite to PostgreSQL and back).

Every table a fleet keeps (tasks, events, checkpoints, the learner, schedules, workers) is
read in its own order and written to an empty destination in one transaction, keeping the
order columns (so events stay in the order they happened and the weekly report of any week
is the same on both). At the end the destination is verified against the source: the same
row count per table, and the same totals of every task's tokens and cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fleetlab.errors import StoreError, UserError
from fleetlab.store.base import Store

__all__ = ["TABLES", "CopyReport", "copy_fleet"]


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    columns: tuple[str, ...]
    key: str  # the order rows are read and written in (unique)


def _t(name: str, columns: str, key: str) -> _Table:
    return _Table(name, tuple(columns.split()), key)


#: What a fleet is, table by table, parents before the rows that refer to them. The tasks'
#: key is the backend's insertion order (SQLite's rowid, PostgreSQL's seq).
TABLES: tuple[_Table, ...] = (
    _t(
        "tasks",
        "id parent_id root_id trace_id span_id depth role title spec priority status attempts"
        " preempt_streak created_us started_us finished_us updated_us lease_owner"
        " lease_expires_us heartbeat_us result error budget_usd budget_tokens tokens_in"
        " tokens_out cost_usd tree_tokens_in tree_tokens_out tree_cost_usd tree_agents"
        " lease_epoch",
        "",
    ),
    _t(
        "events",
        "seq id ts_us kind trace_id span_id parent_span_id task_id role attrs",
        "seq",
    ),
    _t("checkpoints", "task_id turn created_us state", "task_id, turn"),
    _t("learner_arms", "bucket arm n reward_sum reward_sq", "bucket, arm"),
    _t(
        "learner_updates",
        "seq ts_us task_id bucket arm reward success cost_usd mean_direct mean_decompose preferred"
        " means",
        "seq",
    ),
    _t(
        "learner_seeds",
        "seq ts_us source bucket arm n reward_sum reward_sq objective simulated",
        "seq",
    ),
    _t("schedules", "id title spec priority weekday at_time zone next_us created_us", "id"),
    _t("workers", "id host pid started_us heartbeat_us stopped_us", "id"),
)
_BATCH = 5_000
_TOTALS = (
    "SELECT COUNT(*), COALESCE(SUM(tokens_in), 0), COALESCE(SUM(tokens_out), 0),"
    " COALESCE(SUM(cost_usd), 0), COALESCE(SUM(tree_cost_usd), 0),"
    " COALESCE(SUM(lease_epoch), 0) FROM tasks"
)


@dataclass(frozen=True, slots=True)
class CopyReport:
    """Rows copied per table (equal in source and destination: verified)."""

    rows: dict[str, int]


def copy_fleet(
    src: Store, dst: Store, *, progress: Callable[[str, int, int], None] | None = None
) -> CopyReport:
    """Copy every table of ``src`` into ``dst``, which must hold no tasks yet.

    ``progress(table, done, total)`` is called as rows are written.

    Raises:
        UserError: ``dst`` already holds a fleet, or is the same database as ``src``.
        StoreError: the copy did not verify (nothing of it is kept: one transaction).
    """
    if src.url == dst.url:
        raise UserError(f"source and destination are the same database ({src.location})")
    held = _count(dst, "tasks")
    if held:
        raise UserError(
            f"{dst.location} already holds {held:,} tasks: copy into an empty database"
            " (a new file, or a new PostgreSQL database)"
        )
    totals = {t.name: _count(src, t.name) for t in TABLES}
    with dst.tx() as conn:
        for table in TABLES:
            done = 0
            if progress is not None:
                progress(table.name, 0, totals[table.name])
            for rows in _read(src, table):
                dst._insert_copied(conn, table.name, _write_columns(dst, table), rows)
                done += len(rows)
                if progress is not None:
                    progress(table.name, done, totals[table.name])
        dst._copied_identities(conn)
        _verify(src, dst, totals)
    return CopyReport(totals)


def _count(store: Store, table: str) -> int:
    return int(store.query(f"SELECT COUNT(*) FROM {table}")[0][0])


def _read_columns(store: Store, table: _Table) -> tuple[str, ...]:
    if table.name == "tasks":
        return (f"{store._INSERT_ORDER} AS insert_order", *table.columns)
    return table.columns


def _write_columns(store: Store, table: _Table) -> tuple[str, ...]:
    if table.name == "tasks":
        return (store._INSERT_ORDER, *table.columns)
    return table.columns


def _read(store: Store, table: _Table) -> Iterator[list[tuple[Any, ...]]]:
    """The table's rows in key order, a batch at a time (keyset pagination)."""
    columns = _read_columns(store, table)
    key = [k.strip() for k in (table.key or store._INSERT_ORDER).split(",")]
    # Where each key column is in a row read (the tasks' order is read as insert_order).
    at = [0] if not table.key else [columns.index(k) for k in key]
    select = f"SELECT {', '.join(columns)} FROM {table.name}"
    order = f" ORDER BY {', '.join(key)} LIMIT {_BATCH}"
    after: tuple[Any, ...] | None = None
    while True:
        if after is None:
            rows = store.query(select + order)
        else:
            marks = ", ".join("?" * len(key))
            rows = store.query(f"{select} WHERE ({', '.join(key)}) > ({marks}){order}", after)
        if not rows:
            return
        yield [tuple(r) for r in rows]
        after = tuple(rows[-1][i] for i in at)


def _verify(src: Store, dst: Store, totals: dict[str, int]) -> None:
    for table in TABLES:
        got = int(dst.query(f"SELECT COUNT(*) FROM {table.name}")[0][0])
        if got != totals[table.name]:
            raise StoreError(
                f"copy did not verify: {table.name} has {got:,} rows in {dst.location},"
                f" {totals[table.name]:,} in {src.location}; nothing was kept"
            )
    want = [round(float(x), 6) for x in src.query(_TOTALS)[0]]
    copied = [round(float(x), 6) for x in dst.query(_TOTALS)[0]]
    if want != copied:
        raise StoreError(
            f"copy did not verify: task totals differ ({want} in the source, {copied} copied);"
            " nothing was kept"
        )
