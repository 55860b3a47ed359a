"""`fleetlab db copy`: a whole fleet moves from SQLite to PostgreSQL and back, verified.

The oracle is the source itself: every row of every table read back from the copy, and the
weekly metrics of a simulated week computed on both databases, must be equal.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fleetlab.clock import parse_week
from fleetlab.digest import compute_metrics
from fleetlab.errors import UserError
from fleetlab.simulate import simulate
from fleetlab.store import Store, open_store
from fleetlab.store.copy import TABLES, copy_fleet
from fleetlab.store.postgres.cluster import TempCluster

WEEK = "2026-W47"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A simulated week of a fleet (decomposition, learner, preemptions) in SQLite."""
    path = tmp_path_factory.mktemp("copy") / "fleet.db"
    start = parse_week(WEEK).start
    asyncio.run(
        simulate(
            lambda clock: open_store(path, clock=clock), start, days=3, tasks_per_day=12, seed=5
        )
    )
    with open_store(path) as s:
        s.register_worker("hostA:1:aa", "hostA", 1)
    return str(path)


def _dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows (without backend-only order columns), in a fixed order."""
    out = {}
    for table in TABLES:
        cols = ", ".join(table.columns)
        rows = [
            dict(zip(table.columns, r, strict=True))
            for r in store.query(f"SELECT {cols} FROM {table.name}")
        ]
        for row in rows:
            if "attrs" in row:  # JSONB normalises the text (spacing, key order): compare JSON
                row["attrs"] = json.loads(row["attrs"])
        out[table.name] = sorted((tuple(r.items()) for r in rows), key=repr)
    return out


def _metrics(where: str) -> dict[str, Any]:
    window = parse_week(WEEK)
    with open_store(where) as s:
        metrics = compute_metrics(s, window, now=window.end + timedelta(days=1))
    assert metrics.pop("database") == s.location  # says which database it read; the rest is equal
    return metrics


def test_a_fleet_copied_to_postgresql_and_back_is_the_same_fleet(
    source: str, pg_cluster: TempCluster, tmp_path: Path
) -> None:
    seen: dict[str, int] = {}
    with open_store(source) as src, open_store(pg_cluster.create_database()) as pg:
        report = copy_fleet(src, pg, progress=lambda t, done, total: seen.__setitem__(t, done))
        assert _dump(pg) == _dump(src)
        # Events keep their order: a trace reads the same on both.
        root = max(src.tasks(), key=lambda t: (t.tree_agents, t.id))  # the biggest tree
        assert pg.events(trace_id=root.trace_id) == src.events(trace_id=root.trace_id)
        back_path = tmp_path / "back.db"
        with open_store(back_path) as back:
            copy_fleet(pg, back)
            assert _dump(back) == _dump(src)
        pg_url = pg.url
    assert report.rows["tasks"] > 30
    assert report.rows["events"] > report.rows["tasks"]
    assert seen == report.rows  # the progress reached every table's total
    # The weekly report of the copied week is the same on all three databases.
    assert _metrics(pg_url) == _metrics(source) == _metrics(str(back_path))


def test_a_copy_into_a_database_that_holds_a_fleet_is_refused(source: str, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with open_store(other) as dst:
        dst.create_task("already here", priority=1)
    with open_store(source) as src, open_store(other) as dst:
        with pytest.raises(UserError, match="already holds 1 tasks"):
            copy_fleet(src, dst)
        assert [t.title for t in dst.tasks()] == ["already here"]
        with pytest.raises(UserError, match="same database"):
            copy_fleet(src, src)


def _live_columns(store: Store) -> dict[str, set[str]]:
    """The tables and columns the backend's migrations really made (its own catalogue)."""
    if store.backend == "sqlite":
        names = [r[0] for r in store.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            n: {r[1] for r in store.query(f"SELECT * FROM pragma_table_info('{n}')")}
            for n in names
            if not n.startswith("sqlite_")
        }
    out: dict[str, set[str]] = {}
    for table, column in store.query(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema()"
    ):
        out.setdefault(table, set()).add(column)
    return out


#: Columns a backend keeps for itself: the schema version, and PostgreSQL's insertion order of
#: tasks (SQLite's is the rowid); a copy rebuilds them.
_NOT_COPIED = {"meta": None, "tasks": {"seq"}}


@pytest.mark.both_backends
def test_the_copy_covers_every_table_and_column_the_schema_has(db_url: str) -> None:
    with open_store(db_url) as store:
        live = _live_columns(store)
    for table, skip in _NOT_COPIED.items():
        if skip is None:
            live.pop(table, None)
        else:
            live[table] -= skip
    assert {t.name: set(t.columns) for t in TABLES} == live
